//! `license.new`: obtains the vendor order id, issues the requested keys,
//! moves the order `preparing → active`, closes the SLA clock and queues
//! the "keys issued" mail.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::job::{JobArgs, JobError, JobKind, SetOutcome, StillNeeded};
use crate::licensing::issuance;
use crate::licensing::orders::{self, LicenseJob};
use crate::runtime::{Batching, JobContext, Worker, only};
use crate::store::Tx;
use crate::store::jobs::JobRow;

/// The args of `license.new`: the order to activate and its first request.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LicenseNewArgs(pub LicenseJob);

impl JobArgs for LicenseNewArgs {
    const KIND: JobKind = JobKind::LicenseNew;
}

impl JobKind {
    #[allow(non_upper_case_globals)] // spelled like the enum variant it was
    pub const LicenseNew: JobKind = JobKind::new("license.new");
}

pub struct LicenseNew;

#[async_trait]
impl Worker for LicenseNew {
    type Args = LicenseNewArgs;

    fn batching(&self) -> Batching {
        Batching::Sets
    }

    async fn still_needed(&self, tx: &mut Tx<'_>, args: &Self::Args) -> sqlx::Result<StillNeeded> {
        orders::request_still_needed(tx, args.0).await
    }

    async fn work(
        &self,
        ctx: &JobContext,
        job: &JobRow,
        args: LicenseNewArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        only(self.work_set(ctx, &[(job, args)], tx).await)
    }

    async fn work_set(
        &self,
        ctx: &JobContext,
        jobs: &[(&JobRow, LicenseNewArgs)],
        tx: &mut Tx<'_>,
    ) -> SetOutcome {
        let jobs: Vec<_> = jobs.iter().map(|&(job, args)| (job, args.0)).collect();
        issuance::issue(
            ctx.issuer(),
            tx,
            issuance::Issuing::NewOrder,
            &jobs,
            ctx.clock.now(),
        )
        .await
    }
}

//! `license.additional`: issues more keys on an active order (SLA 30 min)
//! and queues the "licenses added" mail.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::job::{JobArgs, JobError, JobKind, SetOutcome, StillNeeded};
use crate::licensing::changes::ChangeJob;
use crate::licensing::issuance;
use crate::licensing::orders::{self, LicenseJob};
use crate::runtime::{Batching, JobContext, Worker, only};
use crate::store::Tx;
use crate::store::jobs::JobRow;
use crate::store::licenses::RequestKind;

/// The args of `license.additional`: the order and the request for more keys.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LicenseAdditionalArgs(pub LicenseJob);

impl JobArgs for LicenseAdditionalArgs {
    const KIND: JobKind = JobKind::LicenseAdditional;
}

impl ChangeJob for LicenseAdditionalArgs {
    const REQUEST: RequestKind = RequestKind::Additional;

    fn for_request(job: LicenseJob) -> Self {
        LicenseAdditionalArgs(job)
    }
}

impl JobKind {
    #[allow(non_upper_case_globals)] // spelled like the enum variant it was
    pub const LicenseAdditional: JobKind = JobKind::new("license.additional");
}

pub struct LicenseAdditional;

#[async_trait]
impl Worker for LicenseAdditional {
    type Args = LicenseAdditionalArgs;

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
        args: LicenseAdditionalArgs,
        tx: &mut Tx<'_>,
    ) -> Result<(), JobError> {
        only(self.work_set(ctx, &[(job, args)], tx).await)
    }

    async fn work_set(
        &self,
        ctx: &JobContext,
        jobs: &[(&JobRow, LicenseAdditionalArgs)],
        tx: &mut Tx<'_>,
    ) -> SetOutcome {
        let jobs: Vec<_> = jobs.iter().map(|&(job, args)| (job, args.0)).collect();
        issuance::issue(
            ctx.issuer(),
            tx,
            issuance::Issuing::Addition,
            &jobs,
            ctx.clock.now(),
        )
        .await
    }
}

//! Assembles a process from its parts — the API, the workers, the outbox
//! relay, the scheduler — and runs them under one cancellation token.
//! `fulfil serve` runs all of them; `api`, `worker` and `scheduler` run a
//! subset.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::relay::{Relay, RelayWake};
use crate::clock::Clock;
use crate::intake::{self, AppState};
use crate::job::JobKind;
use crate::licensing::{self, vendor::LocalVendor};
use crate::mail::handoff::Handoff;
use crate::mail::queue::Mailer;
use crate::runtime::dead_letter_intake::DeadLetterIntake;
use crate::runtime::{JobContext, JobProcessor, consumer};
use crate::settings::Settings;
use crate::sweeps::Sweeper;

/// Which parts this process runs.
#[derive(Debug, Clone)]
pub struct Components {
    pub api: bool,
    pub workers: Vec<JobKind>,
    /// Consume the broker's dead-letter queue into the database.
    pub dead_letter_intake: bool,
    /// Fire the cron sweeps (unless `scheduler.enabled` is false).
    pub scheduler: bool,
}

impl Components {
    pub fn everything() -> Components {
        Components {
            api: true,
            workers: JobKind::ALL.to_vec(),
            dead_letter_intake: true,
            scheduler: true,
        }
    }

    pub fn api_only() -> Components {
        Components {
            api: true,
            workers: Vec::new(),
            dead_letter_intake: false,
            scheduler: false,
        }
    }

    pub fn scheduler_only() -> Components {
        Components {
            api: false,
            workers: Vec::new(),
            dead_letter_intake: false,
            scheduler: true,
        }
    }

    pub fn workers(kinds: Vec<JobKind>) -> Components {
        Components {
            api: false,
            workers: kinds,
            dead_letter_intake: true,
            scheduler: false,
        }
    }
}

pub struct Application {
    addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    pool: PgPool,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Application {
    /// Prepares the database, binds the listener and starts every part.
    /// Returns once all are running; the API's bound address is known.
    pub async fn build(settings: Settings, components: Components) -> anyhow::Result<Application> {
        let settings = Arc::new(settings);
        // Counts recorded before the recorder exists would be lost.
        crate::meters::handle();
        let pool = crate::store::prepare(&settings.database).await?;
        let clock = Clock::from_settings(&settings.clock);
        // One set of compiled mail templates for every part of the process.
        let mailer = Mailer::new(settings.clone());
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        // Commits of this process wake its own relay, when it runs one.
        let relay_wake = settings.outbox.relay.then(RelayWake::default);

        let addr = if components.api {
            let listener = bind(settings.http.addr, "the HTTP listener").await?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, "intake API listening");
            let state = AppState::new(
                pool.clone(),
                settings.clone(),
                clock,
                mailer.clone(),
                relay_wake.clone(),
            );
            tasks.spawn(state.tokens.clone().watch(pool.clone(), shutdown.clone()));
            let router = intake::router(state, crate::dashboard::routes());
            tasks.spawn(serve(listener, router, shutdown.clone()));
            Some(addr)
        } else {
            None
        };

        let metrics_addr = match settings.http.metrics_addr {
            Some(wanted) => {
                let listener = bind(wanted, "the metrics listener").await?;
                let addr = listener.local_addr()?;
                tracing::info!(%addr, "metrics listening");
                let router = crate::ops::metrics::router(pool.clone(), clock);
                tasks.spawn(serve(listener, router, shutdown.clone()));
                Some(addr)
            }
            None => None,
        };

        tasks.spawn(crate::store::statistics::maintain(
            pool.clone(),
            shutdown.clone(),
        ));
        if let Some(wake) = relay_wake {
            let relay = Relay::new(pool.clone(), (*settings).clone(), wake);
            tasks.spawn(relay.run(shutdown.clone()));
        }

        if components.scheduler && settings.scheduler.enabled {
            let sweeper = Sweeper::new(pool.clone(), settings.clone(), clock, mailer.clone());
            tasks.spawn(crate::scheduler::run(sweeper, shutdown.clone()));
        } else if components.scheduler {
            tracing::info!("scheduler.enabled is false: this process fires no sweeps");
        }

        if !components.workers.is_empty() || components.dead_letter_intake {
            // The mail this process's workers queue goes straight to its
            // own sender when it runs `mail.send` (see `mail::handoff`).
            let (handoff, handed_off) = if components.workers.contains(&JobKind::MailSend)
                && !settings.outbox.handoff_grace.is_zero()
            {
                let capacity = usize::from(settings.amqp.prefetch).max(1);
                let (to, from) = tokio::sync::mpsc::channel(capacity);
                (Handoff::to(to, settings.outbox.handoff_grace), Some(from))
            } else {
                (Handoff::none(), None)
            };
            let ctx = JobContext {
                pool: pool.clone(),
                settings: settings.clone(),
                clock,
                signer: Arc::new(licensing::load_signer(&settings.license)?),
                vendor: Arc::new(LocalVendor),
                mailer,
                mail_transport: crate::mail::transport_from_settings(&settings.mail)?,
                attempts: Arc::new(tokio::sync::Semaphore::new(attempt_slots(&settings))),
                handoff,
            };
            if let Some(handed_off) = handed_off {
                tasks.spawn(crate::runtime::mail_sender::run(
                    ctx.clone(),
                    handed_off,
                    shutdown.clone(),
                ));
            }
            for kind in &components.workers {
                let processor = Arc::new(JobProcessor(crate::workers::handler(*kind)));
                tasks.spawn(consumer::run(ctx.clone(), processor, shutdown.clone()));
            }
            if components.dead_letter_intake {
                let processor = Arc::new(DeadLetterIntake);
                tasks.spawn(consumer::run(ctx.clone(), processor, shutdown.clone()));
            }
        }

        Ok(Application {
            addr,
            metrics_addr,
            pool,
            shutdown,
            tasks,
        })
    }

    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Where `http.metrics_addr` was bound, when set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Cancelling this token stops the process gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until every part has stopped (after the token is cancelled).
    pub async fn wait(mut self) {
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "a part of the process panicked");
            }
        }
        self.pool.close().await;
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }
}

/// Attempts that may run at once. Each attempt holds a connection, and
/// the pool keeps a quarter (at least two connections) for the API, the
/// relay and failure bookkeeping; a setting may ask for fewer. Unset, a
/// process runs two attempts per core: deliveries that wait for a slot
/// join the next batch, and a batch's statements serve all its jobs. On
/// two cores, twelve slots took deliveries one or two at a time and ran
/// 10-15 % fewer orders end to end than four (see README, Benchmarks).
fn attempt_slots(settings: &Settings) -> usize {
    let max_connections = settings.database.max_connections;
    let reserve = (max_connections / 4).max(2);
    let fitting = max_connections.saturating_sub(reserve).max(1) as usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match settings.jobs.concurrency {
        0 => fitting.min(2 * cores),
        wanted => wanted.min(fitting),
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {what} on {addr}"))
}

/// Serves `router` until `shutdown`, letting answers in flight finish.
async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: CancellationToken,
) {
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(error) = served {
        tracing::error!(%error, "an HTTP listener failed");
    }
}

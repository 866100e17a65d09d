//! `serve`, `api`, `worker`, `migrate`: start parts of the system and run
//! until SIGTERM or Ctrl-C.

use crate::app::{Application, Components};
use crate::job::JobKind;
use crate::settings::Settings;

pub async fn run(settings: Settings, components: Components) -> anyhow::Result<()> {
    let app = Application::build(settings, components).await?;
    crate::shutdown::cancel_on_signal(app.shutdown_token());
    app.wait().await;
    tracing::info!("stopped");
    Ok(())
}

pub fn parse_kinds(names: &[String]) -> anyhow::Result<Vec<JobKind>> {
    if names.is_empty() {
        return Ok(JobKind::ALL.to_vec());
    }
    names
        .iter()
        .map(|name| {
            JobKind::parse(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown job kind {name:?}; the kinds are {}",
                    crate::workers::kind_list()
                )
            })
        })
        .collect()
}

pub async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let pool = crate::store::prepare(&settings.database).await?;
    // Runtime-checked: _sqlx_migrations is the migrator's table, not our schema.
    let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
        .fetch_one(&pool)
        .await?;
    println!("database ready: {applied} migrations applied");
    Ok(())
}

//! The `fulfil` binary: parse the command line, load settings, dispatch.

use std::process::ExitCode;

use clap::Parser;
use fulfil::app::Components;
use fulfil::cli::{Cli, Command, LicenseCommand, TokenCommand};
use fulfil::commands;
use fulfil::settings::Settings;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    fulfil::telemetry::init();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // `fulfil queues --watch | head`: the reader left; nothing to say.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let settings = Settings::load()?;
    match cli.command {
        Command::Serve => commands::run::run(settings, Components::everything()).await?,
        Command::Api => commands::run::run(settings, Components::api_only()).await?,
        Command::Worker { kinds } => {
            let kinds = commands::run::parse_kinds(&kinds)?;
            commands::run::run(settings, Components::workers(kinds)).await?
        }
        Command::Scheduler => commands::run::run(settings, Components::scheduler_only()).await?,
        Command::Sweep(args) => commands::sweep::run(settings, args).await?,
        Command::Queues(args) => commands::ops::queues(settings, args).await?,
        Command::DeadLetters(command) => commands::ops::dead_letters(settings, command).await?,
        Command::Migrate => commands::run::migrate(settings).await?,
        Command::Token(TokenCommand::Create(args)) => {
            commands::token::create(settings, args).await?
        }
        Command::Token(TokenCommand::List { json }) => {
            commands::token::list(settings, json).await?
        }
        Command::Token(TokenCommand::Revoke { id }) => {
            commands::token::revoke(settings, id).await?
        }
        Command::License(LicenseCommand::Verify(args)) => {
            return commands::license::verify(settings, args).await;
        }
        Command::License(LicenseCommand::PublicKey { json }) => {
            commands::license::public_key(&settings, json)?
        }
    }
    Ok(true)
}

//! One cancellation token for the whole process, cancelled by SIGTERM or
//! Ctrl-C; every long-running task selects on it.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or Ctrl-C.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
            _ = token.cancelled() => return,
        }
        tracing::info!(
            "shutdown requested: no new work is taken, in-flight jobs finish or go back"
        );
        token.cancel();
    });
}

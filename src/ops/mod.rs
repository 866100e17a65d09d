//! What operators do, shared by the CLI and the ops API: look at the
//! queues, list dead letters, replay them, report SLA attainment.

pub mod metrics;
pub mod queues;
pub mod replay;
pub mod sla;

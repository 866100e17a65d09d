//! Provisional sign-ups (SPEC §1.4), the domain the registration intake,
//! the sign-up page and the dashboard's review queue share: the
//! application and its rules (`application`).

pub mod application;

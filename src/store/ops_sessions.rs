//! Dashboard sessions: a random secret in the operator's cookie, its hash
//! here, bound to the operator token that signed in. Times are the
//! database's wall clock, not the business clock: a drill that moves
//! `clock.now` must not sign operators out.

use std::time::Duration;

use sqlx::PgExecutor;
use uuid::Uuid;

use super::Tx;
use super::tokens::{self, TokenIdentity, TokenRow};

/// Starts a session for `token_id`; returns its id and the secret for the
/// cookie, which exists nowhere else. Expired sessions are swept first.
pub async fn start(tx: &mut Tx<'_>, token_id: Uuid, ttl: Duration) -> sqlx::Result<(Uuid, String)> {
    sqlx::query!("delete from ops_sessions where expires_at <= now()",)
        .execute(&mut **tx)
        .await?;
    let id = Uuid::now_v7();
    let secret = tokens::random_secret("ops_");
    sqlx::query!(
        "insert into ops_sessions (id, secret_hash, token_id, created_at, expires_at)
         values ($1, $2, $3, now(), now() + $4)",
        id,
        tokens::hash_secret(&secret),
        token_id,
        ttl as _, // a Duration encodes as interval; the macros expect PgInterval
    )
    .execute(&mut **tx)
    .await?;
    Ok((id, secret))
}

/// The operator of a live session: not expired, its token not revoked.
pub async fn operator<'e>(
    db: impl PgExecutor<'e>,
    secret: &str,
) -> sqlx::Result<Option<TokenIdentity>> {
    let row: Option<TokenRow> = sqlx::query_as!(
        TokenRow,
        "select t.id, t.name, t.role, t.partner_id, t.rate_limit_per_second
         from ops_sessions s join api_tokens t on t.id = s.token_id
         where s.secret_hash = $1 and s.expires_at > now()
           and t.revoked_at is null and t.role = 'operator'",
        tokens::hash_secret(secret),
    )
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(TokenRow::identity))
}

/// Ends the session; returns its id and token when there was one.
pub async fn end(tx: &mut Tx<'_>, secret: &str) -> sqlx::Result<Option<(Uuid, Uuid)>> {
    let row = sqlx::query!(
        "delete from ops_sessions where secret_hash = $1 returning id, token_id",
        tokens::hash_secret(secret),
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| (r.id, r.token_id)))
}

//! API tokens (stored as hashes) and the partners they are bound to.

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Portal,
    Scheduler,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Portal => "portal",
            Role::Scheduler => "scheduler",
            Role::Operator => "operator",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        [Role::Portal, Role::Scheduler, Role::Operator]
            .into_iter()
            .find(|role| role.as_str() == name)
    }
}

/// The identity behind a request: never the secret itself.
#[derive(Debug, Clone)]
pub struct TokenIdentity {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub partner_id: Option<String>,
    pub rate_limit_per_second: Option<i32>,
}

pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A new API token secret: 256 random bits, URL-safe, with a prefix that
/// makes a leaked token recognisable to secret scanners.
pub fn new_secret() -> String {
    random_secret("ful_")
}

/// 256 random bits, URL-safe, after `prefix`.
pub fn random_secret(prefix: &str) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub async fn ensure_partner(pool: &PgPool, partner_id: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into partners (id) values ($1) on conflict (id) do nothing",
        partner_id,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Stores a token and returns its secret, which exists nowhere else.
pub async fn create_token(
    pool: &PgPool,
    name: &str,
    role: Role,
    partner_id: Option<&str>,
    rate_limit_per_second: Option<i32>,
) -> sqlx::Result<(Uuid, String)> {
    if let Some(partner) = partner_id {
        ensure_partner(pool, partner).await?;
    }
    let secret = new_secret();
    let id = Uuid::now_v7();
    sqlx::query!(
        "insert into api_tokens (id, name, role, partner_id, token_hash, rate_limit_per_second)
         values ($1, $2, $3, $4, $5, $6)",
        id,
        name,
        role.as_str(),
        partner_id,
        hash_secret(&secret),
        rate_limit_per_second,
    )
    .execute(pool)
    .await?;
    Ok((id, secret))
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) partner_id: Option<String>,
    pub(crate) rate_limit_per_second: Option<i32>,
}

impl TokenRow {
    /// `None` for a role this build does not know.
    pub(crate) fn identity(self) -> Option<TokenIdentity> {
        Some(TokenIdentity {
            id: self.id,
            name: self.name,
            role: Role::parse(&self.role)?,
            partner_id: self.partner_id,
            rate_limit_per_second: self.rate_limit_per_second,
        })
    }
}

pub async fn find_by_secret(pool: &PgPool, secret: &str) -> sqlx::Result<Option<TokenIdentity>> {
    find_by_hash(pool, &hash_secret(secret)).await
}

/// The unrevoked token whose secret hashes to `hash`.
pub async fn find_by_hash(pool: &PgPool, hash: &[u8]) -> sqlx::Result<Option<TokenIdentity>> {
    let row: Option<TokenRow> = sqlx::query_as!(
        TokenRow,
        "select id, name, role, partner_id, rate_limit_per_second from api_tokens
         where token_hash = $1 and revoked_at is null",
        hash,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(TokenRow::identity))
}

/// A token as operators see it: never its secret or hash.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct TokenListing {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub partner_id: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn list_tokens(pool: &PgPool) -> sqlx::Result<Vec<TokenListing>> {
    sqlx::query_as!(
        TokenListing,
        "select id, name, role, partner_id, created_at, revoked_at from api_tokens
         order by created_at desc, id desc",
    )
    .fetch_all(pool)
    .await
}

/// Revokes the token and ends its dashboard sessions, in one transaction.
/// `None` when there is no such token; a revoked one keeps its first time.
pub async fn revoke_token(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<TokenListing>> {
    let mut tx = pool.begin().await?;
    let revoked: Option<TokenListing> = sqlx::query_as!(
        TokenListing,
        "update api_tokens set revoked_at = coalesce(revoked_at, now()) where id = $1
         returning id, name, role, partner_id, created_at, revoked_at",
        id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query!("delete from ops_sessions where token_id = $1", id,)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(revoked)
}

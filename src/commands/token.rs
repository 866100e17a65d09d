//! `fulfil token create|list|revoke`.

use crate::cli::TokenCreate;
use crate::settings::Settings;
use crate::store::tokens::{self, Role};

pub async fn create(settings: Settings, args: TokenCreate) -> anyhow::Result<()> {
    let role = Role::parse(&args.role).ok_or_else(|| {
        anyhow::anyhow!(
            "--role must be portal, operator or scheduler, not {:?}",
            args.role
        )
    })?;
    match (role, &args.partner) {
        (Role::Portal, None) => {
            anyhow::bail!("a portal token acts for one partner: add --partner ID")
        }
        (Role::Portal, Some(partner)) if !crate::intake::body::is_identifier(partner) => {
            anyhow::bail!("--partner must be 1 to 64 letters, digits, '.', '_' or '-'")
        }
        (Role::Operator | Role::Scheduler, Some(_)) => {
            anyhow::bail!("only portal tokens are bound to a partner; drop --partner")
        }
        _ => {}
    }
    let rate = args
        .rate_limit
        .map(|r| i32::try_from(r).ok().filter(|r| *r > 0))
        .map(|r| r.ok_or_else(|| anyhow::anyhow!("--rate-limit must be a positive number")))
        .transpose()?;
    let pool = crate::store::open_existing(&settings.database).await?;
    let (id, secret) =
        tokens::create_token(&pool, &args.name, role, args.partner.as_deref(), rate).await?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "id": id, "role": role.as_str(), "partner": args.partner, "token": secret })
        );
    } else {
        println!("{secret}");
        eprintln!(
            "created {} token {id}{}; it is shown only now: store it safely",
            role.as_str(),
            args.partner
                .map(|p| format!(" for partner {p}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn list(settings: Settings, json: bool) -> anyhow::Result<()> {
    let pool = crate::store::open_existing(&settings.database).await?;
    let listed = tokens::list_tokens(&pool).await?;
    if json {
        println!("{}", serde_json::to_string(&listed)?);
        return Ok(());
    }
    if listed.is_empty() {
        println!("no tokens; create one with `fulfil token create --role …`");
        return Ok(());
    }
    println!(
        "{:<36}  {:<9}  {:<16}  {:<20}  {:<20}  NAME",
        "ID", "ROLE", "PARTNER", "CREATED", "REVOKED"
    );
    let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    for token in listed {
        println!(
            "{:<36}  {:<9}  {:<16}  {:<20}  {:<20}  {}",
            token.id,
            token.role,
            token.partner_id.as_deref().unwrap_or("-"),
            at(token.created_at),
            token.revoked_at.map(at).unwrap_or_else(|| "-".into()),
            token.name
        );
    }
    Ok(())
}

pub async fn revoke(settings: Settings, id: uuid::Uuid) -> anyhow::Result<()> {
    let pool = crate::store::open_existing(&settings.database).await?;
    match tokens::revoke_token(&pool, id).await? {
        Some(token) => {
            println!(
                "revoked {} token {}{}; it answers 401 from now on",
                token.role,
                token.id,
                token
                    .partner_id
                    .map(|p| format!(" for partner {p}"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        None => anyhow::bail!("no token {id}: see `fulfil token list`"),
    }
}

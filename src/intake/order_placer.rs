//! Group commit for new orders. Each `POST /v1/license-orders` hands its
//! order to the placer and waits; the placer writes whatever orders are
//! waiting in one statement (`store::licenses::place_orders`) and one
//! commit. Nothing waits for company: an order that finds the placer idle
//! goes alone, and orders queue only while earlier statements run, so the
//! batch grows with the load and a lone request pays nothing for it.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, PgPool};
use tokio::sync::{mpsc, oneshot};

use crate::broker::relay::RelayWake;
use crate::store::licenses::{self, PlaceOrder, Placement};

/// Orders in one statement at most.
const MOST: usize = 64;
/// Statements in flight at once: one writing while the next batch
/// gathers. With four, 32 requests in flight made batches of about four
/// orders each and the statements competed with each other for two
/// cores; with two the batches are larger and each order costs less:
/// intake 4,538-5,638 -> 6,211-6,435 orders/s, e2e 1,942/2,034 ->
/// 2,188/2,314, p99 of the 202s at 900/s 21.3/20.4 -> 19.7/14.3 ms.
const IN_FLIGHT: usize = 2;

type Reply = oneshot::Sender<sqlx::Result<Placement>>;

#[derive(Clone)]
pub struct OrderPlacer {
    queue: mpsc::Sender<(PlaceOrder, Reply)>,
}

impl OrderPlacer {
    /// Starts the placer on connections of its own to `pool`'s database;
    /// it ends once every clone of it is dropped. With `relay_wake` (this
    /// process runs a relay), placed orders wake that relay instead of
    /// notifying.
    pub fn start(pool: &PgPool, relay_wake: Option<RelayWake>) -> OrderPlacer {
        let (queue, waiting) = mpsc::channel(MOST * IN_FLIGHT);
        tokio::spawn(run(Connector::of(pool, relay_wake), waiting));
        OrderPlacer { queue }
    }

    /// Places the order (with whichever others are waiting).
    pub async fn place(&self, order: PlaceOrder) -> sqlx::Result<Placement> {
        let (reply, placement) = oneshot::channel();
        self.queue
            .send((order, reply))
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        placement.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

/// Opens the placer's connections, one per statement in flight, each kept
/// by its slot. Not a pool: a pool checks a connection with a round trip
/// when it is taken and another when it is given back, two round trips
/// around every statement of the intake's hottest route. A kept
/// connection that turns out broken (PostgreSQL restarted since its last
/// statement) is replaced and the batch placed once more on the new one
/// (see [`place_on`]).
///
/// The connections plan the new-order statement once. Left to choose,
/// PostgreSQL planned it afresh at four calls in ten (475 plans in 1,107
/// calls, 388 ms of planning in a 5,000-order run): its generic plan
/// reckons with ten rows per array and so looks dearer than a custom plan
/// for the batch at hand. The statement is written to need no particular
/// plan (each order's checks are subqueries by key), and nothing else runs
/// on these connections.
///
/// With a relay in the process, the connections also carry
/// [`RelayWake::SETTING`], and each batch that placed an order wakes that
/// relay.
#[derive(Clone)]
struct Connector {
    options: PgConnectOptions,
    timeout: Duration,
    relay_wake: Option<RelayWake>,
}

impl Connector {
    fn of(pool: &PgPool, relay_wake: Option<RelayWake>) -> Connector {
        let mut options = (*pool.connect_options())
            .clone()
            .options([("plan_cache_mode", "force_generic_plan")]);
        if relay_wake.is_some() {
            options = options.options([RelayWake::SETTING]);
        }
        Connector {
            options,
            timeout: pool.options().get_acquire_timeout(),
            relay_wake,
        }
    }

    async fn connect(&self) -> sqlx::Result<PgConnection> {
        tokio::time::timeout(self.timeout, PgConnection::connect_with(&self.options))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
    }
}

/// A statement slot and the connection it keeps, once opened.
type Slot = Option<PgConnection>;

async fn run(connector: Connector, mut waiting: mpsc::Receiver<(PlaceOrder, Reply)>) {
    let (free, mut slots) = mpsc::channel::<Slot>(IN_FLIGHT);
    for _ in 0..IN_FLIGHT {
        free.try_send(None).expect("room for every slot");
    }
    loop {
        let slot = slots.recv().await.expect("the loop keeps a sender");
        let mut batch = Vec::with_capacity(MOST);
        if waiting.recv_many(&mut batch, MOST).await == 0 {
            // Every placer is gone: close the connections as their
            // statements end.
            drop(free);
            close(slot).await;
            while let Some(slot) = slots.recv().await {
                close(slot).await;
            }
            return;
        }
        let (connector, free) = (connector.clone(), free.clone());
        tokio::spawn(async move {
            let (orders, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let (slot, placed) = place_on(&connector, slot, &orders).await;
            if let Some(wake) = &connector.relay_wake
                && placed.iter().any(Result::is_ok)
            {
                wake.wake();
            }
            for (reply, placed) in replies.into_iter().zip(placed) {
                // A caller that went away (its client hung up) needs no answer.
                let _ = reply.send(placed);
            }
            let _ = free.send(slot).await;
        });
    }
}

async fn close(slot: Slot) {
    if let Some(connection) = slot {
        let _ = connection.close().await;
    }
}

/// Places the batch on the slot's connection (opened first if the slot has
/// none) and gives back what the slot keeps: the connection, unless it
/// failed otherwise than by PostgreSQL refusing the statement. A kept
/// connection found broken is replaced and the batch placed once more on
/// the new one. That is safe: had the first statement committed before the
/// connection broke, the second finds each order's saved response and
/// answers with it, as for a client's retry.
async fn place_on(
    connector: &Connector,
    slot: Slot,
    orders: &[PlaceOrder],
) -> (Slot, Vec<sqlx::Result<Placement>>) {
    let mut kept = slot;
    loop {
        let reused = kept.is_some();
        let mut connection = match kept.take() {
            Some(connection) => connection,
            None => match connector.connect().await {
                Ok(connection) => connection,
                Err(error) => return (None, every_one(error, orders.len())),
            },
        };
        let placed = place_batch(&mut connection, orders).await;
        let failed =
            |test: fn(&sqlx::Error) -> bool| placed.iter().any(|p| p.as_ref().is_err_and(test));
        if reused && failed(crate::store::is_unavailable) {
            continue;
        }
        let broken = failed(|e| !matches!(e, sqlx::Error::Database(_)));
        return ((!broken).then_some(connection), placed);
    }
}

/// Places the batch in one statement, and answers each order in its
/// place. If PostgreSQL refuses the statement (a twin's key, say), each
/// order is placed alone, so that one order's refusal is its own. If the
/// database is unreachable, every order gets that answer (a 503); one
/// whose statement did commit before the connection broke finds its saved
/// response when the client retries.
pub async fn place_batch(
    conn: &mut PgConnection,
    orders: &[PlaceOrder],
) -> Vec<sqlx::Result<Placement>> {
    match licenses::place_orders(&mut *conn, orders).await {
        Ok(placements) => placements.into_iter().map(Ok).collect(),
        Err(error) if orders.len() == 1 => vec![Err(error)],
        Err(sqlx::Error::Database(_)) => {
            let mut placed = Vec::with_capacity(orders.len());
            for order in orders {
                let one = licenses::place_orders(&mut *conn, std::slice::from_ref(order)).await;
                placed.push(one.map(|mut one| one.remove(0)));
            }
            placed
        }
        Err(error) => {
            tracing::warn!(%error, orders = orders.len(), "placing new orders failed");
            every_one(error, orders.len())
        }
    }
}

/// `error` as the answer of each of `orders` orders.
fn every_one(error: sqlx::Error, orders: usize) -> Vec<sqlx::Result<Placement>> {
    let mut placed: Vec<_> = (1..orders).map(|_| Err(same_kind(&error))).collect();
    placed.insert(0, Err(error));
    placed
}

/// An error that answers as `error` does (503 or 500), for the orders of
/// a batch beyond the first: `sqlx::Error` cannot be cloned.
fn same_kind(error: &sqlx::Error) -> sqlx::Error {
    if crate::store::is_unavailable(error) {
        sqlx::Error::PoolTimedOut
    } else {
        sqlx::Error::Protocol(format!("placing the batch failed: {error}"))
    }
}

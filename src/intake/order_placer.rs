//! Group commit for new orders. Each `POST /v1/license-orders` hands its
//! order to the placer and waits; the placer writes whatever orders are
//! waiting in one statement (`store::licenses::place_orders`) and one
//! commit. Nothing waits for company: an order that finds the placer idle
//! goes alone, and orders queue only while earlier statements run, so the
//! batch grows with the load and a lone request pays nothing for it.

use std::sync::Arc;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::{Semaphore, mpsc, oneshot};

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
    /// it ends once every clone of it is dropped.
    pub fn start(pool: &PgPool) -> OrderPlacer {
        let (queue, waiting) = mpsc::channel(MOST * IN_FLIGHT);
        tokio::spawn(run(own_connections(pool), waiting));
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

/// [`IN_FLIGHT`] connections that plan the new-order statement once. Left
/// to choose, PostgreSQL planned it afresh at four calls in ten (475
/// plans in 1,107 calls, 388 ms of planning in a 5,000-order run): its
/// generic plan reckons with ten rows per array and so looks dearer than
/// a custom plan for the batch at hand. The statement is written to need
/// no particular plan (each order's checks are subqueries by key), and
/// nothing else runs on these connections. They are opened on the first
/// order, and wait for a connection and check it as the main pool does.
fn own_connections(pool: &PgPool) -> PgPool {
    let options = (*pool.connect_options())
        .clone()
        .options([("plan_cache_mode", "force_generic_plan")]);
    PgPoolOptions::new()
        .max_connections(IN_FLIGHT as u32)
        .acquire_timeout(pool.options().get_acquire_timeout())
        .test_before_acquire(pool.options().get_test_before_acquire())
        .connect_lazy_with(options)
}

async fn run(pool: PgPool, mut waiting: mpsc::Receiver<(PlaceOrder, Reply)>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let mut batch = Vec::with_capacity(MOST);
        if waiting.recv_many(&mut batch, MOST).await == 0 {
            return;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            let (orders, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            for (reply, placed) in replies.into_iter().zip(place_batch(&pool, orders).await) {
                // A caller that went away (its client hung up) needs no answer.
                let _ = reply.send(placed);
            }
            drop(slot);
        });
    }
}

/// Places the batch in one statement, and answers each order in its
/// place. If PostgreSQL refuses the statement (a twin's key, say), each
/// order is placed alone, so that one order's refusal is its own. If the
/// database is unreachable, every order gets that answer (a 503); one
/// whose statement did commit before the connection broke finds its saved
/// response when the client retries.
pub async fn place_batch(pool: &PgPool, orders: Vec<PlaceOrder>) -> Vec<sqlx::Result<Placement>> {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(error) => return every_one(error, orders.len()),
    };
    match licenses::place_orders(&mut conn, &orders).await {
        Ok(placements) => placements.into_iter().map(Ok).collect(),
        Err(error) if orders.len() == 1 => vec![Err(error)],
        Err(sqlx::Error::Database(_)) => {
            let mut placed = Vec::with_capacity(orders.len());
            for order in &orders {
                let one = licenses::place_orders(&mut conn, std::slice::from_ref(order)).await;
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

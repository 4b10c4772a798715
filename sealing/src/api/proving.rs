//! The proving endpoints: deadlines, faults, PoSt runs, and checks of a
//! deadline's sectors (`kiln proving …`).

use super::server::{blocking, ApiError, ApiResult, Ctx};
use crate::chain::{ProvingSectorOnChain, SectorHealth};
use axum::extract::Path as UrlPath;
use wire::api::{DeadlineDetail, DeadlineView, FaultsView, ProvingInfo, SectorCheck};

/// PoSt runs shown by `GET /v0/proving`.
const RECENT_RUNS: usize = 20;

fn deadline_number(raw: &str, deadlines: u64) -> Result<u64, ApiError> {
    match raw.parse::<u64>() {
        Ok(n) if n < deadlines => Ok(n),
        _ => Err(ApiError::invalid(format!("deadline {raw:?} is not one of 0..{deadlines}"))),
    }
}

fn count(sectors: &[ProvingSectorOnChain], health: SectorHealth) -> u64 {
    sectors.iter().filter(|s| s.health == health).count() as u64
}

pub(super) async fn info(axum::extract::State(ctx): Ctx) -> ApiResult<ProvingInfo> {
    blocking(ctx, |ctx| {
        let now = ctx.ledger.now_ms();
        let chain = ctx.ledger.chain_view();
        let head = chain.head(now)?;
        let schedule = chain.proving_schedule();
        let sectors = chain.proving_sectors(now)?;
        let recent_runs = ctx.ledger.store().post_runs(RECENT_RUNS)?;
        let from = head.saturating_sub(schedule.period()).max(1);
        Ok(ProvingInfo {
            head,
            schedule,
            current: schedule.current(head),
            active: count(&sectors, SectorHealth::Active),
            faulty: count(&sectors, SectorHealth::Faulty),
            recovering: count(&sectors, SectorHealth::Recovering),
            recent_runs,
            elections: chain.elections(from, head, now)?,
        })
    })
    .await
}

pub(super) async fn deadlines(axum::extract::State(ctx): Ctx) -> ApiResult<Vec<DeadlineView>> {
    blocking(ctx, |ctx| {
        let now = ctx.ledger.now_ms();
        let chain = ctx.ledger.chain_view();
        let head = chain.head(now)?;
        let schedule = chain.proving_schedule();
        let sectors = chain.proving_sectors(now)?;
        let posts = chain.posts_since(head.saturating_sub(schedule.period()), now)?;
        Ok((0..schedule.deadlines)
            .map(|d| {
                let window = schedule.next_of(d, head);
                let members: Vec<&ProvingSectorOnChain> =
                    sectors.iter().filter(|s| s.deadline == d).collect();
                let partitions: std::collections::BTreeSet<u64> =
                    members.iter().map(|s| s.partition).collect();
                let last_open = posts.iter().filter(|p| p.deadline == d).map(|p| p.open_epoch).max();
                DeadlineView {
                    window,
                    partitions: partitions.len() as u64,
                    sectors: members.len() as u64,
                    faulty: members.iter().filter(|s| s.health == SectorHealth::Faulty).count() as u64,
                    proven_last_window: posts
                        .iter()
                        .filter(|p| p.deadline == d && Some(p.open_epoch) == last_open)
                        .count() as u64,
                }
            })
            .collect())
    })
    .await
}

pub(super) async fn deadline(
    axum::extract::State(ctx): Ctx,
    UrlPath(raw): UrlPath<String>,
) -> ApiResult<DeadlineDetail> {
    blocking(ctx, move |ctx| {
        let now = ctx.ledger.now_ms();
        let chain = ctx.ledger.chain_view();
        let head = chain.head(now)?;
        let schedule = chain.proving_schedule();
        let d = deadline_number(&raw, schedule.deadlines)?;
        let sectors = chain.proving_sectors(now)?.into_iter().filter(|s| s.deadline == d).collect();
        let posts = chain
            .posts_since(head.saturating_sub(2 * schedule.period()), now)?
            .into_iter()
            .filter(|p| p.deadline == d)
            .collect();
        Ok(DeadlineDetail { window: schedule.next_of(d, head), sectors, posts })
    })
    .await
}

pub(super) async fn check(
    axum::extract::State(ctx): Ctx,
    UrlPath(raw): UrlPath<String>,
) -> ApiResult<Vec<SectorCheck>> {
    blocking(ctx, move |ctx| {
        let now = ctx.ledger.now_ms();
        let chain = ctx.ledger.chain_view();
        let d = deadline_number(&raw, chain.proving_schedule().deadlines)?;
        let sectors = chain.proving_sectors(now)?;
        let members: Vec<&ProvingSectorOnChain> = sectors.iter().filter(|s| s.deadline == d).collect();
        crate::proving::check_sectors(&ctx.config, &members).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await
}

pub(super) async fn faults(axum::extract::State(ctx): Ctx) -> ApiResult<FaultsView> {
    blocking(ctx, |ctx| {
        let now = ctx.ledger.now_ms();
        let chain = ctx.ledger.chain_view();
        let head = chain.head(now)?;
        let period = chain.proving_schedule().period();
        let sectors =
            chain.proving_sectors(now)?.into_iter().filter(|s| s.health != SectorHealth::Active).collect();
        Ok(FaultsView { sectors, events: chain.health_events(head.saturating_sub(2 * period), now)? })
    })
    .await
}

//! Workers' results written to disk as they arrive: a result of any size
//! costs the daemon a buffer, not its length in memory.

use axum::body::{Body, Bytes, HttpBody};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::pin::Pin;

/// Why a result was not kept.
#[derive(Debug, thiserror::Error)]
pub(super) enum StreamError {
    /// It ran past its limit.
    #[error("longer than its limit")]
    TooLarge,
    /// The request body broke off.
    #[error("{0}")]
    Body(String),
    /// This node could not write it (a full disk, a failing one).
    #[error("{0}")]
    Disk(String),
}

/// Writes `body` to `path`, at most `limit` bytes: into a temporary sibling,
/// synced and renamed into place once whole. Returns its length; on any
/// failure nothing is left behind.
pub(super) async fn stream_to_file(body: Body, path: &Path, limit: u64) -> Result<u64, StreamError> {
    let disk = |e: proofs::Error| StreamError::Disk(e.to_string());
    let dir = proofs::durable::parent_dir(path).to_path_buf();
    let (tmp, file) = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            proofs::durable::create_dir(&dir)?;
            proofs::durable::create_unique_temp(&path)
        })
        .await
        .map_err(|e| StreamError::Disk(e.to_string()))?
        .map_err(disk)?
    };
    // Chunks go to a blocking writer; a few in flight bound the memory taken.
    let (chunks, mut arriving) = tokio::sync::mpsc::channel::<Bytes>(8);
    let writer = {
        let tmp = tmp.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let mut file: File = file;
            while let Some(chunk) = arriving.blocking_recv() {
                file.write_all(&chunk).map_err(|e| format!("write {}: {e}", tmp.display()))?;
            }
            file.sync_all().map_err(|e| format!("sync {}: {e}", tmp.display()))
        })
    };
    let read = read_into(body, &chunks, limit).await;
    drop(chunks);
    let written =
        writer.await.map_err(|e| StreamError::Disk(e.to_string())).and_then(|w| w.map_err(StreamError::Disk));
    let kept = match (read, written) {
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(len), Ok(())) => {
            let (tmp, path) = (tmp.clone(), path.to_path_buf());
            tokio::task::spawn_blocking(move || proofs::durable::rename(&tmp, &path))
                .await
                .map_err(|e| StreamError::Disk(e.to_string()))?
                .map_err(disk)
                .map(|()| len)
        }
    };
    if kept.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    kept
}

/// Reads `body` frame by frame into `chunks`, failing past `limit` bytes.
/// A writer that stopped (it failed) ends the reading; its error is the one reported.
async fn read_into(
    mut body: Body,
    chunks: &tokio::sync::mpsc::Sender<Bytes>,
    limit: u64,
) -> Result<u64, StreamError> {
    let mut total = 0u64;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| StreamError::Body(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        total += data.len() as u64;
        if total > limit {
            return Err(StreamError::TooLarge);
        }
        if chunks.send(data).await.is_err() {
            break;
        }
    }
    Ok(total)
}

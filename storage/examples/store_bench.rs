//! The store's half of `bench/store.sh`: puts a file into a filesystem store as a blob
//! (streamed, hashed, written, committed), or streams a blob back out to stdout.
//!
//! `store_bench put ROOT FILE DIGEST` · `store_bench get ROOT DIGEST`

use std::io::{Read, Write};
use std::sync::Arc;

use berth_storage::{Digest, FsBackend, Store};
use bytes::Bytes;
use futures::StreamExt;

const CHUNK: usize = 4 << 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = match args.get(1).map(String::as_str) {
        Some("put") if args.len() == 5 => rt.block_on(put(&args[2], &args[3], &args[4])),
        Some("get") if args.len() == 4 => rt.block_on(get(&args[2], &args[3])),
        _ => Err("usage: store_bench put ROOT FILE DIGEST | get ROOT DIGEST".into()),
    };
    if let Err(e) = result {
        eprintln!("store_bench: {e}");
        std::process::exit(1);
    }
}

fn store(root: &str) -> Result<Store, String> {
    Ok(Store::new(Arc::new(
        FsBackend::new(root, false).map_err(|e| e.to_string())?,
    )))
}

async fn put(root: &str, file: &str, digest: &str) -> Result<(), String> {
    let store = store(root)?;
    let digest: Digest = digest.parse().map_err(|e| format!("{e}"))?;
    let mut f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    // A reader thread feeds the hashing task, as a network socket would.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    std::thread::spawn(move || loop {
        // read_to_end fills spare capacity without zeroing it first.
        let mut buf = Vec::with_capacity(CHUNK);
        match (&mut f).take(CHUNK as u64).read_to_end(&mut buf) {
            Ok(0) => return,
            Ok(_) => {
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    store
        .blobs
        .put(&digest, stream)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn get(root: &str, digest: &str) -> Result<(), String> {
    let store = store(root)?;
    let digest: Digest = digest.parse().map_err(|e| format!("{e}"))?;
    let mut stream = store
        .blobs
        .get(&digest, None)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

//! The baseline `bench/files.sh` measures uploads against: one file put with `object_store`
//! directly (streamed from disk as a multipart upload of 5 MiB parts, no HTTP server, no
//! hashing, no metadata), then deleted. Prints the rate in MiB/s.
//!
//! ```sh
//! raw_put FILE file:///some/folder
//! AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… raw_put FILE s3://bucket http://127.0.0.1:9000
//! ```

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMultipartOptions, WriteMultipart};
use tokio::io::AsyncReadExt;

const PART_SIZE: usize = 5 * 1024 * 1024;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = std::env::args().skip(1);
    let usage = "usage: raw_put FILE (file:///folder | s3://bucket ENDPOINT)";
    let file = args.next().context(usage)?;
    let target = args.next().context(usage)?;
    let store: Arc<dyn ObjectStore> = if let Some(dir) = target.strip_prefix("file://") {
        std::fs::create_dir_all(dir)?;
        Arc::new(LocalFileSystem::new_with_prefix(dir)?.with_fsync(true))
    } else if let Some(bucket) = target.strip_prefix("s3://") {
        let endpoint = args.next().context(usage)?;
        Arc::new(
            AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_endpoint(endpoint)
                .with_region("us-east-1")
                .with_virtual_hosted_style_request(false)
                .with_allow_http(true)
                .build()?,
        )
    } else {
        anyhow::bail!(usage);
    };

    let path = Path::from(format!("raw-put/{}", std::process::id()));
    let mut source = tokio::fs::File::open(&file).await.with_context(|| format!("open {file}"))?;
    let started = Instant::now();
    let upload = store.put_multipart_opts(&path, PutMultipartOptions::default()).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut buffer = vec![0_u8; 1024 * 1024];
    let mut size = 0_u64;
    loop {
        let read = source.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        writer.wait_for_capacity(4).await?;
        writer.write(&buffer[..read]);
        size += read as u64;
    }
    writer.finish().await?;
    let seconds = started.elapsed().as_secs_f64();
    store.delete(&path).await?;
    #[allow(clippy::cast_precision_loss)]
    let mib = size as f64 / (1024.0 * 1024.0);
    // The figure is this tool's output, read by bench/files.sh.
    #[allow(clippy::print_stdout)]
    {
        println!("{:.1}", mib / seconds);
    }
    Ok(())
}

//! An object store that fails chosen PUTs, to prove that failed writes are redelivered and that
//! nothing is lost or counted twice.
#![allow(dead_code)]

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Fails every `every`-th PUT whose path starts with `prefix`, at most `max_failures` times, while `enabled`.
pub struct FlakyStore {
    pub inner: Arc<dyn ObjectStore>,
    pub prefix: String,
    pub every: usize,
    pub max_failures: usize,
    pub enabled: std::sync::atomic::AtomicBool,
    puts: AtomicUsize,
    pub failures: AtomicUsize,
}

impl FlakyStore {
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        prefix: &str,
        every: usize,
        max_failures: usize,
    ) -> FlakyStore {
        FlakyStore {
            inner,
            prefix: prefix.into(),
            every,
            max_failures,
            enabled: true.into(),
            puts: 0.into(),
            failures: 0.into(),
        }
    }
}

impl fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flaky({})", self.inner)
    }
}

impl fmt::Debug for FlakyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flaky({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FlakyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if self.enabled.load(Ordering::SeqCst) && location.as_ref().starts_with(&self.prefix) {
            let n = self.puts.fetch_add(1, Ordering::SeqCst);
            if n.is_multiple_of(self.every)
                && self.failures.load(Ordering::SeqCst) < self.max_failures
            {
                self.failures.fetch_add(1, Ordering::SeqCst);
                return Err(object_store::Error::Generic {
                    store: "flaky",
                    source: format!("injected failure writing {location}").into(),
                });
            }
        }
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

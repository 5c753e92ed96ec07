//! Per-service bundle data: the slot through which a service (EC2's
//! inventory today) reads its own directory of a bundle and keeps what it
//! read beside the compiled IAM view.
//!
//! The bundle layer runs the loaders it is given after the snapshot
//! compiled and passed its tests, in the same load, so a loader's error
//! refuses the whole bundle like any other and its data is swapped in with
//! the snapshot, never apart from it. This module knows no service: a
//! loader is a trait object registered by the top layer
//! (`crate::registry`), and the data it produces is opaque here (`Any`),
//! read back by the service that made it.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::bundle::err::BundleError;
use crate::bundle::files::BundleFiles;

/// Data a service read from a bundle, shared by every reader of the
/// snapshot that holds it.
pub type Data = Arc<dyn Any + Send + Sync>;

/// Reads one service's part of a bundle.
pub trait BundleDataLoader: Send + Sync + fmt::Debug {
    /// The service the data belongs to (its IAM prefix, `ec2`).
    fn service(&self) -> &'static str;

    /// Reads the service's files (for example with
    /// [`BundleFiles::under`]). An error refuses the bundle.
    fn load(&self, files: &BundleFiles) -> Result<Data, BundleError>;
}

/// The loaders a bundle load runs, in registration order.
#[derive(Clone, Default)]
pub struct DataLoaders(Arc<[Arc<dyn BundleDataLoader>]>);

impl DataLoaders {
    /// Loaders from a list (one per service that has bundle data).
    pub fn new(loaders: Vec<Arc<dyn BundleDataLoader>>) -> Self {
        Self(loaders.into())
    }

    /// Runs every loader on `files`; the first error refuses the bundle.
    pub fn load(&self, files: &BundleFiles) -> Result<ServiceData, BundleError> {
        let mut out = Vec::with_capacity(self.0.len());
        for loader in self.0.iter() {
            out.push((loader.service(), loader.load(files)?));
        }
        Ok(ServiceData(out))
    }

    /// The services whose loaders run, in order.
    pub fn services(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().map(|l| l.service())
    }
}

impl fmt::Debug for DataLoaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.services()).finish()
    }
}

/// Two sets of loaders are equal when they run the same services' loaders
/// in the same order (what a load's outcome depends on).
impl PartialEq for DataLoaders {
    fn eq(&self, other: &Self) -> bool {
        self.services().eq(other.services())
    }
}

impl Eq for DataLoaders {}

/// What each service's loader read from one bundle, held by its snapshot.
#[derive(Default, Clone)]
pub struct ServiceData(Vec<(&'static str, Data)>);

impl ServiceData {
    /// The data `service` loaded, if its loader ran and made a `T`.
    pub fn get<T: Any + Send + Sync>(&self, service: &str) -> Option<Arc<T>> {
        self.0
            .iter()
            .find(|(s, _)| *s == service)
            .and_then(|(_, d)| d.clone().downcast::<T>().ok())
    }

    /// Whether `service`'s loader ran for this bundle.
    pub fn has(&self, service: &str) -> bool {
        self.0.iter().any(|(s, _)| *s == service)
    }
}

impl fmt::Debug for ServiceData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(s, _)| s))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Count;

    impl BundleDataLoader for Count {
        fn service(&self) -> &'static str {
            "count"
        }
        fn load(&self, files: &BundleFiles) -> Result<Data, BundleError> {
            let n = files.under("count", ".json").count();
            if n > 1 {
                return Err(BundleError::invalid("count", "$", "at most one file"));
            }
            Ok(Arc::new(n))
        }
    }

    #[test]
    fn loaders_run_in_order_and_their_data_reads_back_typed() {
        let loaders = DataLoaders::new(vec![Arc::new(Count)]);
        let files = BundleFiles::from_pairs([("count/a.json", "{}")]);
        let data = loaders.load(&files).unwrap();
        assert_eq!(data.get::<usize>("count").as_deref(), Some(&1));
        assert!(data.get::<String>("count").is_none(), "wrong type");
        assert!(data.get::<usize>("other").is_none());
        let two = BundleFiles::from_pairs([("count/a.json", "{}"), ("count/b.json", "{}")]);
        let e = loaders.load(&two).err().map(|e| e.to_string()).unwrap();
        assert!(e.contains("at most one file"), "{e}");
    }
}

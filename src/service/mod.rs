//! The service seam (issue 12): what a service (EC2 today; S3-style object
//! stores, STS, instance credentials and Kubernetes admission next)
//! supplies so that the server, the bundle reader and the validator need
//! no code of their own for it.
//!
//! A service gives:
//! - its name (the IAM prefix of its actions, `ec2`) and the mapping name
//!   ext_authz routes select it by (`iamgate.mapping`,
//!   `--default-mapping`);
//! - its action catalog ([`Service::actions`]);
//! - its bundle data ([`Service::bundle_data`]): a loader for its own
//!   directory of the bundle, run in the same load as the IAM compile, its
//!   result held by that snapshot and swapped with it; and what to do when
//!   a snapshot becomes active ([`Service::activate`], EC2 seeds its live
//!   inventory);
//! - its live state for `/v1/status` ([`Service::status`]); a front door
//!   of the service's own (EC2's IMDS, say) finds the service, and with it
//!   that state, in the registry ([`Registry::get`]), not in the server's
//!   shared state;
//! - its HTTP request mapping and the shape of its answers
//!   ([`HttpMapping`]): a request becomes one or more IAM requests, all of
//!   which must be allowed, and a refusal or denial is worded the way the
//!   service's clients expect.
//!
//! The services are listed once, in a [`Registry`] built at the top
//! (`crate::registry`). This module owns the traits and the registry; it
//! must not know any particular service, nor listeners, protocols or
//! metrics (the server adapts a [`HttpMapping`] to ext_authz).

pub mod catalog;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::bundle::Snapshot;
use crate::bundle::service_data::{BundleDataLoader, DataLoaders};
use crate::engine::ContextValue;
use crate::engine::authz::{AuthzAnswer, AuthzRequest};

/// One service behind the seam. (`Any`, so that a front door of the
/// service's own finds its state in the registry: [`Registry::get`].)
pub trait Service: Any + Send + Sync + fmt::Debug {
    /// The IAM prefix of the service's actions (`ec2`, `s3`).
    fn name(&self) -> &'static str;

    /// The name ext_authz routes select the service's request mapping by
    /// (`iamgate.mapping`, `--default-mapping`).
    fn mapping(&self) -> &'static str;

    /// The service's actions, without the prefix, in AWS's casing.
    fn actions(&self) -> Vec<&'static str>;

    /// The service's Service Authorization Reference tables, if it ships
    /// them (the validator checks actions, resources and condition keys of
    /// the service's namespace against them).
    fn catalog(&self) -> Option<&'static catalog::Catalog> {
        None
    }

    /// The loader of the service's bundle data, if it has any.
    fn bundle_data(&self) -> Option<Arc<dyn BundleDataLoader>> {
        None
    }

    /// Called with each snapshot just before it becomes the active one
    /// (blocking; it may write the service's own state).
    fn activate(&self, _snapshot: &Snapshot) {}

    /// The service's generic HTTP request mapping, if it has one. A
    /// service without it has a front door of its own in the server.
    fn http(&self) -> Option<&dyn HttpMapping> {
        None
    }

    /// The service's live state for `/v1/status`, under the key it names
    /// (`inventory`); nothing that reveals a resource or a secret. A key
    /// the server's own status (or an earlier service) already has is left
    /// out.
    fn status(&self) -> Option<(&'static str, serde_json::Value)> {
        None
    }
}

/// One HTTP request as a service mapping sees it: only what the proxy
/// forwarded, all of it the client's word (untrusted).
#[derive(Debug, Clone, Copy)]
pub struct HttpCall<'a> {
    /// `GET`, `PUT`, ...
    pub method: &'a str,
    /// The request target as sent: raw path and query, undecoded.
    pub path: &'a str,
    /// The `Host` (`:authority`).
    pub host: &'a str,
    /// The headers as the proxy forwarded them (names in lower case).
    pub headers: &'a std::collections::HashMap<String, String>,
    /// The route's region (`iamgate.region`), configuration rather than
    /// the client's word.
    pub region: Option<&'a str>,
}

/// One IAM request a call needs: the action (with its prefix), the
/// resource ARN, and the service's own context keys (the request-wide
/// ones, `aws:SourceIp` and the like, are added by the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub action: String,
    pub resource: String,
    pub context: Vec<(String, ContextValue)>,
}

/// An HTTP answer worded by a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// A request the service refused before any decision (the client's
/// mistake: a denial, never an `error_response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// What was wrong, for logs.
    pub message: String,
    /// The answer the client gets.
    pub reply: HttpReply,
}

/// A service's HTTP request mapping and answer wording.
pub trait HttpMapping: Send + Sync {
    /// The IAM requests `call` needs, in order; all must be allowed. A
    /// request the service would not accept is refused, never guessed.
    fn map(&self, call: &HttpCall<'_>) -> Result<Vec<Mapped>, Refused>;

    /// The answer to a call whose `request` was not allowed;
    /// `decision_id` identifies the decision (a request id to the client).
    fn denied(
        &self,
        call: &HttpCall<'_>,
        request: &AuthzRequest,
        answer: &AuthzAnswer,
        decision_id: &str,
    ) -> HttpReply;
}

/// Why a registry was not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("two services are registered as `{0}`")]
    DuplicateName(&'static str),
    #[error("two services use the mapping name `{0}`")]
    DuplicateMapping(&'static str),
}

/// The services a process serves, each once.
#[derive(Clone, Default)]
pub struct Registry {
    services: Vec<Arc<dyn Service>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry with `service` added; its name and mapping name must
    /// be new.
    pub fn with(mut self, service: Arc<dyn Service>) -> Result<Self, RegistryError> {
        for s in &self.services {
            if s.name() == service.name() {
                return Err(RegistryError::DuplicateName(service.name()));
            }
            if s.mapping() == service.mapping() {
                return Err(RegistryError::DuplicateMapping(service.mapping()));
            }
        }
        self.services.push(service);
        Ok(self)
    }

    /// The service whose mapping name is `mapping`.
    pub fn by_mapping(&self, mapping: &str) -> Option<&Arc<dyn Service>> {
        self.services.iter().find(|s| s.mapping() == mapping)
    }

    /// The service named `name` (its IAM prefix).
    pub fn by_name(&self, name: &str) -> Option<&Arc<dyn Service>> {
        self.services.iter().find(|s| s.name() == name)
    }

    /// The registered service of type `S` (a front door of that service's
    /// own reaching its live state).
    pub fn get<S: Service>(&self) -> Option<&S> {
        self.services
            .iter()
            .find_map(|s| (&**s as &dyn Any).downcast_ref::<S>())
    }

    /// Every registered service, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Service>> {
        self.services.iter()
    }

    /// The catalogs of the services that ship one, in registration order.
    pub fn catalogs(&self) -> Vec<&'static catalog::Catalog> {
        self.services.iter().filter_map(|s| s.catalog()).collect()
    }

    /// The mapping names, in registration order.
    pub fn mappings(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.services.iter().map(|s| s.mapping())
    }

    /// The bundle-data loaders of the services that have one.
    pub fn loaders(&self) -> DataLoaders {
        DataLoaders::new(
            self.services
                .iter()
                .filter_map(|s| s.bundle_data())
                .collect(),
        )
    }

    /// Tells every service that `snapshot` is about to become active.
    pub fn activate(&self, snapshot: &Snapshot) {
        for s in &self.services {
            s.activate(snapshot);
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.services.iter().map(|s| (s.name(), s.mapping())))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Named(&'static str, &'static str);

    impl Service for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn mapping(&self) -> &'static str {
            self.1
        }
        fn actions(&self) -> Vec<&'static str> {
            vec!["Get"]
        }
    }

    #[test]
    fn names_and_mapping_names_are_unique() {
        let r = Registry::new().with(Arc::new(Named("a", "a-api"))).unwrap();
        assert_eq!(
            r.clone().with(Arc::new(Named("a", "other"))).err(),
            Some(RegistryError::DuplicateName("a"))
        );
        assert_eq!(
            r.clone().with(Arc::new(Named("b", "a-api"))).err(),
            Some(RegistryError::DuplicateMapping("a-api"))
        );
        let r = r.with(Arc::new(Named("b", "b-api"))).unwrap();
        assert_eq!(r.by_mapping("b-api").map(|s| s.name()), Some("b"));
        assert_eq!(r.by_name("a").map(|s| s.mapping()), Some("a-api"));
        assert!(r.by_mapping("generic").is_none());
        assert_eq!(r.mappings().collect::<Vec<_>>(), ["a-api", "b-api"]);
        assert!(r.loaders().services().next().is_none());
        assert_eq!(r.get::<Named>().map(|s| s.0), Some("a"));
        assert!(Registry::new().get::<Named>().is_none());
    }
}

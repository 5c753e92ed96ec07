//! Sharing the strings compiled policies repeat (actions, condition keys
//! and values, pieces of ARNs). While a bundle compiles inside [`scope`],
//! equal strings become one shared allocation; outside a scope, [`intern`]
//! simply allocates, so compiling one policy on its own (a session policy
//! per request) keeps no table.

use std::cell::RefCell;
use std::sync::Arc;

use rustc_hash::FxHashSet;

thread_local! {
    static TABLE: RefCell<Option<FxHashSet<Arc<str>>>> = const { RefCell::new(None) };
}

/// The shared copy of `s` in the current scope, or a new one.
pub fn intern(s: &str) -> Arc<str> {
    TABLE.with(|t| match t.borrow_mut().as_mut() {
        Some(set) => match set.get(s) {
            Some(shared) => shared.clone(),
            None => {
                let shared: Arc<str> = s.into();
                set.insert(shared.clone());
                shared
            }
        },
        None => s.into(),
    })
}

/// Restores the enclosing table when a scope ends, even by unwinding.
struct Restore(Option<FxHashSet<Arc<str>>>);

impl Drop for Restore {
    fn drop(&mut self) {
        let outer = self.0.take();
        TABLE.with(|t| *t.borrow_mut() = outer);
    }
}

/// Runs `f` with a fresh table on this thread; the table is dropped when
/// `f` returns (the strings live on in what was compiled).
pub fn scope<T>(f: impl FnOnce() -> T) -> T {
    let _restore = Restore(TABLE.with(|t| t.replace(Some(FxHashSet::default()))));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_allocation_only_inside_a_scope() {
        let (a, b) = scope(|| (intern("ec2:startinstances"), intern("ec2:startinstances")));
        assert!(Arc::ptr_eq(&a, &b));
        let (c, d) = (intern("x"), intern("x"));
        assert!(!Arc::ptr_eq(&c, &d));
        assert_eq!(c, d);
    }
}

//! The keys every request carries (`aws:SourceIp`, `aws:SecureTransport`,
//! `aws:CurrentTime`, `aws:EpochTime`), the time texts formatted once per
//! second per thread.

use super::*;

/// Adds the keys every request carries: `aws:SourceIp`,
/// `aws:SecureTransport`, `aws:CurrentTime` and `aws:EpochTime`.
pub(crate) fn insert_request_keys(
    context: &mut Context,
    source_ip: Option<IpAddr>,
    scheme: &str,
    now: SystemTime,
) {
    if let Some(ip) = source_ip {
        context.insert_static("aws:sourceip", ContextValue::One(ip_text(ip)));
    }
    let epoch = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let [secure, current, epoch] = texts(scheme.eq_ignore_ascii_case("https"), epoch);
    context.insert_static("aws:securetransport", ContextValue::Shared(secure));
    context.insert_static("aws:currenttime", ContextValue::Shared(current));
    context.insert_static("aws:epochtime", ContextValue::Shared(epoch));
}

/// An address as `Display` writes it; IPv4 (the usual case) without the
/// formatting machinery.
pub(super) fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut s = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if octet >= 100 {
            s.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            s.push(char::from(b'0' + octet / 10 % 10));
        }
        s.push(char::from(b'0' + octet % 10));
    }
    s
}

/// Context values shared by the requests of one thread.
struct Texts {
    /// The second `current` and `epoch` are for.
    second: i64,
    current: Arc<str>,
    epoch: Arc<str>,
    yes: Arc<str>,
    no: Arc<str>,
}

impl Texts {
    fn new(second: i64) -> Self {
        let (current, epoch) = Self::clock(second);
        Self {
            second,
            current,
            epoch,
            yes: "true".into(),
            no: "false".into(),
        }
    }

    /// `aws:CurrentTime` and `aws:EpochTime`.
    fn clock(second: i64) -> (Arc<str>, Arc<str>) {
        let current = prost_types::Timestamp {
            seconds: second,
            nanos: 0,
        };
        (current.to_string().into(), second.to_string().into())
    }

    fn get(&mut self, secure: bool, second: i64) -> [Arc<str>; 3] {
        if self.second != second {
            (self.current, self.epoch) = Self::clock(second);
            self.second = second;
        }
        let secure = if secure { &self.yes } else { &self.no };
        [secure.clone(), self.current.clone(), self.epoch.clone()]
    }
}

/// `aws:SecureTransport`, `aws:CurrentTime` and `aws:EpochTime` for a
/// second since the epoch: formatted once per second per thread, then
/// shared.
fn texts(secure: bool, second: i64) -> [Arc<str>; 3] {
    thread_local! {
        static LAST: RefCell<Option<Texts>> = const { RefCell::new(None) };
    }
    LAST.with(|last| match last.try_borrow_mut() {
        Ok(mut last) => last
            .get_or_insert_with(|| Texts::new(second))
            .get(secure, second),
        Err(_) => Texts::new(second).get(secure, second),
    })
}

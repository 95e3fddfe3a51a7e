//! What the user agent tells the TU about subscriptions, and what the TU
//! tells it about a NOTIFY: the public types of RFC 6665 here.

use rsip::Request;

use super::*;

/// Names a subscription for the lifetime of the user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub(crate) u64);

impl SubscriptionId {
    /// A subscription id from its number: for tests of code that consumes
    /// [`SubscriptionEvent`]s, and for logs.
    pub fn from_raw(n: u64) -> Self {
        Self(n)
    }

    pub fn raw(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sub{}", self.0)
    }
}

/// The `Subscription-State` of a NOTIFY (RFC 6665 4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    pub status: SubscriptionStatus,
    /// The seconds left (`expires=`), for `active` and `pending`.
    pub expires: Option<u32>,
    /// Why it ended (`reason=`), for `terminated`.
    pub reason: Option<String>,
    /// When to try again (`retry-after=`), for `terminated`.
    pub retry_after: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    Active,
    Pending,
    Terminated,
}

impl SubscriptionState {
    /// Reads a header value: `active;expires=600`,
    /// `terminated;reason=deactivated`. Extension states are refused
    /// (RFC 6665 4.1.3 lets a subscriber treat them as... nothing it can
    /// act on, so the NOTIFY gets 400).
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';').map(str::trim);
        let status = match parts.next()?.to_ascii_lowercase().as_str() {
            "active" => SubscriptionStatus::Active,
            "pending" => SubscriptionStatus::Pending,
            "terminated" => SubscriptionStatus::Terminated,
            _ => return None,
        };
        let mut state = Self {
            status,
            expires: None,
            reason: None,
            retry_after: None,
        };
        for param in parts {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "expires" => state.expires = Some(delta_seconds(value)?),
                "retry-after" => state.retry_after = Some(delta_seconds(value)?),
                "reason" if !value.is_empty() => state.reason = Some(value.to_ascii_lowercase()),
                _ => {}
            }
        }
        Some(state)
    }
}

/// How [`UserAgent::notify`] leaves the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyState {
    /// Goes on: `active;expires=<seconds left>`.
    Active,
    /// Ends it: `terminated;reason=<reason>` (RFC 6665 4.1.3).
    Terminated(TerminatedReason),
}

/// The reasons of RFC 6665 4.1.3 a notifier ends a subscription with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminatedReason {
    /// Going away (a reboot); the subscriber may subscribe again at once.
    Deactivated,
    /// Try again later.
    Probation,
    Rejected,
    /// Not refreshed in time.
    Timeout,
    Giveup,
    /// The resource is gone.
    Noresource,
    Invariant,
}

impl TerminatedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deactivated => "deactivated",
            Self::Probation => "probation",
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::Giveup => "giveup",
            Self::Noresource => "noresource",
            Self::Invariant => "invariant",
        }
    }
}

/// Why a subscription ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionEnd {
    /// Subscriber: our SUBSCRIBE got this final failure (RFC 6665
    /// 4.1.2.1); no subscription was made.
    Refused {
        status: u16,
        warning: Option<String>,
        retry_after: Option<u32>,
    },
    /// Notifier: the TU refused the SUBSCRIBE.
    Rejected(u16),
    /// Subscriber: the notifier's NOTIFY said `terminated` (RFC 6665
    /// 4.1.3), with its reason and retry-after.
    ByNotifier {
        reason: Option<String>,
        retry_after: Option<u32>,
    },
    /// Notifier: the subscriber unsubscribed (`Expires: 0`, RFC 6665
    /// 4.1.2.3).
    Unsubscribed,
    /// A request in the dialog got 481 or 408 or no answer: the peer has
    /// forgotten it (RFC 6665 4.1.2.2, 4.2.2).
    DialogGone(u16),
    /// Not refreshed before it expired (RFC 6665 4.2.2), or the TU never
    /// answered an incoming SUBSCRIBE.
    Expired,
    /// We ended it: our unsubscribe went through, or our terminating
    /// NOTIFY went out.
    Local,
}

/// What happened to a subscription, for the TU.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionEvent {
    /// Notifier: a new SUBSCRIBE for a package we serve, screened by
    /// nobody yet: the TU checks `source` and the request (proxy flow,
    /// digest) as for an INVITE, then calls
    /// [`UserAgent::accept_subscription`], [`UserAgent::reject_subscription`]
    /// or [`UserAgent::reject_subscription_statelessly`] (a challenge).
    Incoming {
        subscription: SubscriptionId,
        request: Request,
        source: Target,
        /// The body (a want), checked by the package.
        body: Vec<u8>,
        /// The duration asked for.
        expires: u32,
    },
    /// A SUBSCRIBE (notifier) or NOTIFY (subscriber) inside the dialog,
    /// with [`UaConfig::screen_in_dialog`]: let it through with
    /// [`UserAgent::admit_in_dialog`] or answer it once with
    /// [`UserAgent::refuse_in_dialog`], as for a BYE.
    InDialogRequest {
        subscription: SubscriptionId,
        id: ServerId,
        request: Request,
        source: Target,
        on_dialog_flow: bool,
    },
    /// Subscriber: our SUBSCRIBE (or refresh) got a 2xx with this
    /// duration granted; the UA refreshes at half of it.
    Active {
        subscription: SubscriptionId,
        expires: u32,
    },
    /// Subscriber: a NOTIFY, already answered 200.
    Notified {
        subscription: SubscriptionId,
        state: SubscriptionState,
        body: Vec<u8>,
    },
    /// Notifier: the subscriber refreshed, with this body (empty: none)
    /// and duration; the UA answered 200 and sent the last NOTIFY body
    /// again (RFC 6665 4.2.1.2).
    Refreshed {
        subscription: SubscriptionId,
        body: Vec<u8>,
        expires: u32,
    },
    Terminated {
        subscription: SubscriptionId,
        reason: SubscriptionEnd,
    },
}

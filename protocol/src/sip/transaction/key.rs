//! Matching messages to transactions (RFC 3261 17.1.3 and 17.2.3).

use rsip::prelude::*;
use rsip::{Method, Request, Response};

use super::TransactionError;
use crate::ids::BRANCH_MAGIC_COOKIE;

/// A client transaction is named by the branch of the Via it put on top and
/// the method of its request: a CANCEL shares its INVITE's branch but is a
/// transaction of its own (17.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    pub branch: String,
    /// The method's name: rsip's `Method` is not `Hash`.
    pub method: String,
}

impl ClientKey {
    pub fn of_request(request: &Request) -> Result<Self, TransactionError> {
        Ok(Self {
            branch: top_branch(request)?,
            method: request.method.to_string(),
        })
    }

    /// 17.1.3: the response's top Via branch and its CSeq method.
    pub fn of_response(response: &Response) -> Result<Self, TransactionError> {
        let cseq = response
            .cseq_header()
            .map_err(|_| TransactionError::MissingHeader("CSeq"))?
            .typed()
            .map_err(|_| TransactionError::BadHeader("CSeq"))?;
        Ok(Self {
            branch: top_branch(response)?,
            method: cseq.method.to_string(),
        })
    }
}

/// A server transaction is named by branch, sent-by and method, where an ACK
/// names the INVITE it acknowledges (17.2.3). Requests from RFC 2543 peers
/// carry no magic cookie; they are matched on the dialog identifiers and
/// the top Via instead (17.2.3, last paragraphs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ServerKey {
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: String,
    },
    Rfc2543 {
        request_uri: String,
        from_tag: String,
        call_id: String,
        cseq: u32,
        top_via: String,
        method: String,
    },
}

impl ServerKey {
    pub fn of_request(request: &Request) -> Result<Self, TransactionError> {
        Self::with_method(request, request.method)
    }

    /// The key of the INVITE transaction a CANCEL refers to (9.2).
    pub fn invite_of_cancel(cancel: &Request) -> Result<Self, TransactionError> {
        Self::with_method(cancel, Method::Invite)
    }

    fn with_method(request: &Request, method: Method) -> Result<Self, TransactionError> {
        let method = if method == Method::Ack {
            Method::Invite
        } else {
            method
        }
        .to_string();
        let via = request
            .via_header()
            .map_err(|_| TransactionError::MissingHeader("Via"))?;
        let typed = via
            .typed()
            .map_err(|_| TransactionError::BadHeader("Via"))?;
        match typed.branch() {
            Some(branch) if branch.to_string().starts_with(BRANCH_MAGIC_COOKIE) => {
                Ok(Self::Rfc3261 {
                    branch: branch.to_string(),
                    sent_by: typed
                        .sent_by()
                        .host_with_port
                        .to_string()
                        .to_ascii_lowercase(),
                    method,
                })
            }
            _ => {
                let from_tag = request
                    .from_header()
                    .ok()
                    .and_then(|f| f.tag().ok().flatten())
                    .map(|t| t.value().to_owned())
                    .unwrap_or_default();
                let call_id = request
                    .call_id_header()
                    .map_err(|_| TransactionError::MissingHeader("Call-ID"))?
                    .value()
                    .to_owned();
                let cseq = request
                    .cseq_header()
                    .map_err(|_| TransactionError::MissingHeader("CSeq"))?
                    .seq()
                    .map_err(|_| TransactionError::BadHeader("CSeq"))?;
                Ok(Self::Rfc2543 {
                    request_uri: request.uri.to_string(),
                    from_tag,
                    call_id,
                    cseq,
                    top_via: via.value().to_owned(),
                    method,
                })
            }
        }
    }
}

fn top_branch(message: &impl HeadersExt) -> Result<String, TransactionError> {
    let via = message
        .via_header()
        .map_err(|_| TransactionError::MissingHeader("Via"))?
        .typed()
        .map_err(|_| TransactionError::BadHeader("Via"))?;
    via.branch()
        .map(|b| b.to_string())
        .ok_or(TransactionError::MissingBranch)
}

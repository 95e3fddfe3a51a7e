//! The tokio and operating-system shells the agent, the collector and the
//! load generator share, around the sans-I/O core in `sipsensor-protocol`
//! (as `quinn` and `quinn-udp` are to `quinn-proto`).
//!
//! One module per concern:
//! - [`sip_transport`]: SIP over UDP and TCP sockets, bytes in and out;
//! - [`ua_driver`]: the task that runs a protocol `UserAgent` on them;
//! - [`resolver`]: host names looked up once, for the user agent's hot path;
//! - [`batch_recv`]: many datagrams per system call (`recvmmsg(2)`);
//! - [`socket_buffer`]: a socket's kernel receive buffer;
//! - [`realtime`]: SCHED_FIFO threads and memory locked against paging;
//! - [`open_files`]: the descriptor limit of processes with many sockets.

pub mod batch_recv;
pub mod open_files;
pub mod realtime;
pub mod resolver;
pub mod sip_transport;
pub mod socket_buffer;
pub mod ua_driver;

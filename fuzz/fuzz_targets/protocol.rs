//! Control protocol decoder: any bytes (one line without its '\n', as the supervisor
//! hands it over after the size cap) → `protocol::decode` of a Request and of a Response
//! must return Ok or Err, never panic. A decoded message must also encode again and
//! decode to the same value (the wire format round-trips).
//!
//! The server's line reader (`ipc::server::read_line`) is private and async, so it is
//! not fuzzed here; its cap is tested in src/ipc/server.rs.
#![no_main]

use drover::protocol::{Request, Response, WorkerInfo, decode, encode};
use libfuzzer_sys::fuzz_target;

/// JSON has no NaN or infinity: serde_json writes them as `null`, which does not
/// decode as f32. A huge number in the input (1e300) decodes to an infinite f32, so
/// only responses whose cpu values are finite are expected to round-trip.
fn finite(resp: &Response) -> bool {
    let ok = |w: &[WorkerInfo]| w.iter().all(|w| w.cpu.is_finite());
    match resp {
        Response::Workers { workers } => ok(workers),
        Response::Apps { apps } => apps.iter().all(|a| ok(&a.workers)),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode::<Request>(data) {
        let line = encode(&req);
        let back: Request = decode(&line[..line.len() - 1]).expect("an encoded Request decodes");
        assert_eq!(back, req, "Request round trip");
    }
    if let Ok(resp) = decode::<Response>(data)
        && finite(&resp)
    {
        let line = encode(&resp);
        let back: Response = decode(&line[..line.len() - 1]).expect("an encoded Response decodes");
        assert_eq!(back, resp, "Response round trip");
    }
});

//! What devices publish: each payload carries the meter's cumulative energy
//! counter, read here as whole Wh.
//!
//! - `tasmota`: `tele/<topic>/SENSOR`, `{"ENERGY": {"Total": <kWh>, …}, …}`.
//! - `shelly` (Gen2+): `<id>/status/switch:0` or `pm1:0` with
//!   `{"aenergy": {"total": <Wh>, …}, …}`; `<id>/status/emdata:0` or
//!   `em1data:0` with `{"total_act": <Wh>, …}`; or the same statuses inside a
//!   `NotifyStatus` on `<id>/events/rpc` (`{"params": {"switch:0": {…}}}`).
//! - `json`, our own: `{"total_wh": <integer Wh>}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most bytes a payload may have; a device's is a few hundred.
pub const MAX_PAYLOAD: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Tasmota,
    Shelly,
    Json,
}

/// The counter a payload carries, in Wh; why not, as a short text.
pub fn total_wh(format: Format, payload: &[u8]) -> Result<u64, String> {
    if payload.len() > MAX_PAYLOAD {
        return Err(format!("{} bytes, at most {MAX_PAYLOAD}", payload.len()));
    }
    let value: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    match format {
        Format::Tasmota => {
            let kwh = value
                .get("ENERGY")
                .and_then(|e| e.get("Total"))
                .ok_or("no ENERGY.Total")?;
            whole_wh(kwh, 1_000.0)
        }
        Format::Shelly => {
            let status = shelly_status(&value).ok_or("no aenergy.total or total_act")?;
            whole_wh(status, 1.0)
        }
        Format::Json => value
            .get("total_wh")
            .and_then(Value::as_u64)
            .ok_or_else(|| "total_wh: a whole number of Wh, 0 or more".to_owned()),
    }
}

/// A Shelly counter: in the payload itself or in a `NotifyStatus`'s params.
fn shelly_status(value: &Value) -> Option<&Value> {
    fn direct(v: &Value) -> Option<&Value> {
        v.get("aenergy")
            .and_then(|a| a.get("total"))
            .or_else(|| v.get("total_act"))
    }
    direct(value).or_else(|| value.get("params")?.as_object()?.values().find_map(direct))
}

/// A number of `unit` Wh as whole Wh (rounded: counters carry a few
/// decimals, and the difference of two rounded totals loses nothing over
/// time).
fn whole_wh(number: &Value, unit: f64) -> Result<u64, String> {
    let n = number.as_f64().ok_or("the counter is not a number")?;
    let wh = (n * unit).round();
    // Below 2^53, every whole number is exact.
    if !(0.0..9.0e15).contains(&wh) {
        return Err(format!("the counter {n} is out of range"));
    }
    Ok(wh as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasmota_reports_kwh_with_decimals() {
        let sensor = br#"{"Time":"2026-12-05T10:00:00","ENERGY":{"TotalStartTime":"2026-01-01T00:00:00","Total":1234.567,"Yesterday":3.1,"Today":1.204,"Power":412,"Voltage":231}}"#;
        assert_eq!(total_wh(Format::Tasmota, sensor), Ok(1_234_567));
        assert_eq!(
            total_wh(Format::Tasmota, br#"{"ENERGY":{"Total":0.0005}}"#),
            Ok(1)
        );
        assert!(total_wh(Format::Tasmota, br#"{"ENERGY":{"Power":1}}"#).is_err());
        assert!(total_wh(Format::Tasmota, br#"{"ENERGY":{"Total":-1}}"#).is_err());
        assert!(total_wh(Format::Tasmota, b"ON").is_err());
    }

    #[test]
    fn shelly_reports_wh_in_a_status_or_a_notification() {
        let switch = br#"{"id":0,"source":"timer","output":true,"apower":8.9,"aenergy":{"total":6.532,"by_minute":[45.4,0,0],"minute_ts":1654511972}}"#;
        assert_eq!(total_wh(Format::Shelly, switch), Ok(7));
        let emdata = br#"{"id":0,"a_total_act_energy":1.0,"total_act":5120.25,"total_act_ret":0}"#;
        assert_eq!(total_wh(Format::Shelly, emdata), Ok(5_120));
        let notify = br#"{"src":"shellyplus1pm-a8032ab","dst":"shellies","method":"NotifyStatus","params":{"ts":1654511972.5,"switch:0":{"id":0,"aenergy":{"total":99.6}}}}"#;
        assert_eq!(total_wh(Format::Shelly, notify), Ok(100));
        assert!(total_wh(Format::Shelly, br#"{"id":0,"output":true}"#).is_err());
    }

    #[test]
    fn our_own_payload_is_whole_wh() {
        assert_eq!(total_wh(Format::Json, br#"{"total_wh": 42}"#), Ok(42));
        assert!(total_wh(Format::Json, br#"{"total_wh": 4.2}"#).is_err());
        assert!(total_wh(Format::Json, br#"{"total_wh": -4}"#).is_err());
        assert!(total_wh(Format::Json, &vec![b' '; MAX_PAYLOAD + 1]).is_err());
    }
}

//! Lotus's published API contract, as the shapes of its examples, and a
//! checker of JSON values against them.
//!
//! `shapes.json` (beside this file) is derived from Lotus's OpenRPC
//! document (`../shared/lotus/openrpc-full-v1.json`, Lotus v1.36.2-dev
//! b835fab) for the methods kiln calls: per method, the shape of each
//! positional parameter's example and of the result's. Where Lotus's schemas
//! and its examples disagree, the examples are what goes over the wire, so
//! the shapes are taken from the examples (docs/chain.md lists the cases).
//! `extract` rebuilds the file from the document; a test checks that the
//! committed file is what the document gives, when the document is present.
//!
//! A shape is a JSON value: `"number"`, `"bool"`, `"string"`, `"address"`
//! (an `f0…` string), `"bigint"` (a decimal string), `"base64"`, `"cid"`
//! (`{"/": "bafy…"}`), `"any"` (an empty example: Go's `interface{}` or an
//! empty struct), an array of one element shape, or an object of field shapes.
#![allow(dead_code)]

use serde_json::{json, Map, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The methods kiln's Lotus backend calls.
pub const KILN_METHODS: &[&str] = &[
    "ChainHead",
    "ChainGetTipSetByHeight",
    "StateNetworkVersion",
    "StateMinerInfo",
    "StateLookupID",
    "StateMinerSectorAllocated",
    "StateMinerAllocated",
    "StateGetRandomnessFromTickets",
    "StateGetRandomnessFromBeacon",
    "StateMinerPreCommitDepositForPower",
    "StateMinerInitialPledgeForSector",
    "StateSectorPreCommitInfo",
    "StateMinerProvingDeadline",
    "StateMinerPartitions",
    "StateMinerSectors",
    "StateMinerAvailableBalance",
    "WalletBalance",
    "GasEstimateMessageGas",
    "MpoolGetNonce",
    "WalletSignMessage",
    "MpoolPush",
    "StateSearchMsg",
];

/// The committed shapes.
pub fn shapes() -> Value {
    serde_json::from_str(include_str!("shapes.json")).expect("shapes.json is JSON")
}

/// Lotus's OpenRPC document, when this machine has it (`KILN_LOTUS_OPENRPC`
/// or `../shared/lotus/openrpc-full-v1.json` beside the repository).
pub fn lotus_document() -> Option<PathBuf> {
    let path = std::env::var_os("KILN_LOTUS_OPENRPC").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/lotus/openrpc-full-v1.json")
    });
    path.exists().then_some(path)
}

/// The shapes of `KILN_METHODS` in the OpenRPC `document`.
pub fn extract(document: &Value) -> Value {
    let methods = document["methods"].as_array().expect("an OpenRPC document lists methods");
    let mut out = Map::new();
    for name in KILN_METHODS {
        let full = format!("Filecoin.{name}");
        let method = methods
            .iter()
            .find(|m| m["name"] == full.as_str())
            .unwrap_or_else(|| panic!("Lotus has no method {full}"));
        assert_eq!(method["paramStructure"], "by-position", "{full}");
        let params: Vec<Value> = method["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| shape_of(&p["schema"]["examples"][0], &p["schema"]))
            .collect();
        let result = shape_of(&method["result"]["schema"]["examples"][0], &method["result"]["schema"]);
        out.insert(full, serde_json::json!({ "params": params, "result": result }));
    }
    Value::Object(out)
}

/// The shape of `example`, with its JSON schema where Lotus gives one (a
/// type with its own JSON encoding has none below its top).
fn shape_of(example: &Value, schema: &Value) -> Value {
    match example {
        Value::Null => "any".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(s) => string_kind(s, schema).into(),
        Value::Array(items) => {
            Value::Array(items.first().map(|e| shape_of(e, &schema["items"])).into_iter().collect())
        }
        Value::Object(fields) if fields.is_empty() => "any".into(),
        Value::Object(fields) if fields.len() == 1 && fields.contains_key("/") => "cid".into(),
        Value::Object(fields) => Value::Object(
            fields.iter().map(|(k, v)| (k.clone(), shape_of(v, &schema["properties"][k]))).collect(),
        ),
    }
}

/// What a string example stands for. Lotus's docs write every address as an
/// `f0` id and every big integer as digits; bytes are base64, marked so by
/// the schema, or typed an array of numbers (Go's `[]byte`, which its JSON
/// writes as base64), or recognisable by base64's own characters.
fn string_kind(s: &str, schema: &Value) -> &'static str {
    use base64::Engine;
    let marked = schema["media"]["binaryEncoding"] == "base64"
        || schema["type"].as_array().is_some_and(|t| t.iter().any(|t| t == "array"));
    let looks = s.contains(['+', '/', '=']) && base64::engine::general_purpose::STANDARD.decode(s).is_ok();
    if s.len() > 2
        && (s.starts_with("f0") || s.starts_with("t0"))
        && s[2..].bytes().all(|b| b.is_ascii_digit())
    {
        "address"
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        "bigint"
    } else if marked || looks {
        "base64"
    } else {
        "string"
    }
}

/// Where Lotus's schema for a method of `KILN_METHODS` types a value
/// otherwise than its example writes it (the example is what goes over the
/// wire): one line per case, for docs/chain.md.
pub fn schema_disagreements(document: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for m in document["methods"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        if !KILN_METHODS.iter().any(|k| name == format!("Filecoin.{k}")) {
            continue;
        }
        let mut slots: Vec<(String, &Value)> = m["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (format!("param {} ({})", p["name"].as_str().unwrap(), p["description"].as_str().unwrap()), p)
            })
            .collect();
        slots.push((format!("result ({})", m["result"]["description"].as_str().unwrap()), &m["result"]));
        for (slot, p) in slots {
            disagreements(&p["schema"]["examples"][0], &p["schema"], &format!("{name} {slot}"), &mut out);
        }
    }
    out
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn disagreements(example: &Value, schema: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(types) = schema["type"].as_array() {
        let is = json_type(example);
        if !example.is_null() && !types.iter().any(|t| t == is) {
            let said: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            out.push(format!("{at}: schema says {}, the example is {is} {}", said.join("|"), brief(example)));
            return;
        }
    }
    match example {
        Value::Object(fields) => {
            for (k, v) in fields {
                if schema["properties"].get(k).is_some() {
                    disagreements(v, &schema["properties"][k], &format!("{at}.{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            if let (Some(first), Some(_)) = (items.first(), schema.get("items")) {
                let items_schema =
                    if schema["items"].is_array() { &schema["items"][0] } else { &schema["items"] };
                disagreements(first, items_schema, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

fn brief(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 40 {
        format!("{}…", &text[..text.char_indices().nth(40).map_or(text.len(), |(i, _)| i)])
    } else {
        text
    }
}

/// Whether `value` has `shape`; the error names the path that does not.
/// Fields of an object must be fields of the shape; a missing field is Go's
/// zero value and `null` is a nil pointer, slice or map, as Lotus reads them.
pub fn conforms(value: &Value, shape: &Value, path: &str) -> Result<(), String> {
    let wrong = |what: &str| Err(format!("{path}: expected {what}, got {value}"));
    match shape {
        Value::String(kind) => match (kind.as_str(), value) {
            ("any", _) => Ok(()),
            (_, Value::Null) if kind == "cid" => Ok(()),
            ("number", Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(()),
            ("bool", Value::Bool(_)) => Ok(()),
            ("string", Value::String(_)) => Ok(()),
            ("address", Value::String(s)) => s
                .replacen('t', "f", 1)
                .parse::<fvm_shared::address::Address>()
                .map(|_| ())
                .map_err(|e| format!("{path}: address {s:?}: {e}")),
            ("bigint", Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
            ("base64", Value::String(s)) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map(|_| ())
                    .map_err(|e| format!("{path}: base64 {s:?}: {e}"))
            }
            ("cid", Value::Object(o)) if o.len() == 1 => match o.get("/").and_then(Value::as_str) {
                Some(c) if c.parse::<cid::Cid>().is_ok() => Ok(()),
                _ => wrong("a CID {\"/\": \"bafy…\"}"),
            },
            _ => wrong(kind),
        },
        Value::Array(element) => match value {
            Value::Null => Ok(()),
            Value::Array(items) => match element.first() {
                None => Ok(()),
                Some(e) => items
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, item)| conforms(item, e, &format!("{path}[{i}]"))),
            },
            _ => wrong("an array"),
        },
        Value::Object(fields) => match value {
            Value::Null => Ok(()),
            Value::Object(o) => o.iter().try_for_each(|(k, v)| match fields.get(k) {
                Some(s) => conforms(v, s, &format!("{path}.{k}")),
                None => Err(format!("{path}: field {k} is not in Lotus's type")),
            }),
            _ => wrong("an object"),
        },
        other => Err(format!("{path}: bad shape {other}")),
    }
}

/// Checks a JSON-RPC request against the shapes: a method kiln may call,
/// as many positional parameters as it has, each of its shape.
pub fn check_request(shapes: &Value, request: &Value) -> Result<(String, Vec<Value>), String> {
    if request["jsonrpc"] != "2.0" || !request["id"].is_number() {
        return Err(format!("not a JSON-RPC 2.0 request with an id: {request}"));
    }
    let method = request["method"].as_str().ok_or("no method")?.to_string();
    let shape = shapes.get(&method).ok_or_else(|| format!("{method} is not a method kiln may call"))?;
    let params = request["params"].as_array().ok_or_else(|| format!("{method}: params are not a list"))?;
    let wanted = shape["params"].as_array().expect("shapes list params");
    if params.len() != wanted.len() {
        return Err(format!("{method}: {} parameters, Lotus takes {}", params.len(), wanted.len()));
    }
    for (i, (p, s)) in params.iter().zip(wanted).enumerate() {
        conforms(p, s, &format!("{method} param {}", i + 1))?;
    }
    Ok((method, params.clone()))
}

/// A value of `shape` (the documentation's stand-ins: the first of every
/// list, `f01234` for addresses, 42 for numbers).
pub fn sample(shape: &Value) -> Value {
    match shape {
        Value::String(kind) => match kind.as_str() {
            "number" => 42.into(),
            "bool" => true.into(),
            "address" => "f01234".into(),
            "bigint" => "1000".into(),
            "base64" => "Ynl0ZSBhcnJheQ==".into(),
            "cid" => {
                serde_json::json!({ "/": "bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4" })
            }
            "any" => Value::Object(Map::new()),
            _ => "text".into(),
        },
        Value::Array(element) => Value::Array(element.iter().map(sample).collect()),
        Value::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), sample(v))).collect()),
        other => other.clone(),
    }
}

/// What the node does with one request.
pub enum Reply {
    /// A result, checked against Lotus's shape of the method's result.
    Json(Value),
    /// A result outside Lotus's shapes, on purpose.
    Malformed(Value),
    /// A JSON-RPC error: code and message.
    Error(i64, &'static str),
    /// An HTTP status without JSON.
    Http(u16, &'static str),
}

/// A Lotus-shaped node: checks the bearer token and every request against
/// Lotus's shapes, then answers as `handler` says.
pub struct Node {
    /// Its API URL.
    pub url: String,
    /// Every method called, in order.
    pub calls: Arc<Mutex<Vec<String>>>,
    /// Why requests were refused.
    pub refused: Arc<Mutex<Vec<String>>>,
}

pub fn node(token: &'static str, handler: impl Fn(&str, &[Value]) -> Reply + Send + Sync + 'static) -> Node {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/rpc/v1", listener.local_addr().unwrap());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let (c, r) = (calls.clone(), refused.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (c, r, h) = (c.clone(), r.clone(), handler.clone());
            std::thread::spawn(move || serve(stream, token, &c, &r, &*h));
        }
    });
    Node { url, calls, refused }
}

fn serve(
    stream: TcpStream,
    token: &str,
    calls: &Mutex<Vec<String>>,
    refused: &Mutex<Vec<String>>,
    handler: &dyn Fn(&str, &[Value]) -> Reply,
) {
    let shapes = shapes();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (mut length, mut auth) = (0usize, String::new());
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "authorization" => auth = value.trim().to_string(),
                _ => {}
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        let reply = if auth != format!("Bearer {token}") {
            Reply::Http(401, "unauthorized")
        } else {
            let request: Value = serde_json::from_slice(&body).unwrap();
            match check_request(&shapes, &request) {
                Err(why) => {
                    refused.lock().unwrap().push(why.clone());
                    Reply::Json(
                        json!({ "jsonrpc": "2.0", "id": request["id"], "error": { "code": 1, "message": why } }),
                    )
                }
                Ok((method, params)) => {
                    calls.lock().unwrap().push(method.clone());
                    match handler(&method, &params) {
                        Reply::Json(result) => {
                            let shape = &shapes[&method]["result"];
                            if let Err(why) = conforms(&result, shape, &method) {
                                panic!("the test node would answer outside Lotus's shapes: {why}");
                            }
                            Reply::Json(json!({ "jsonrpc": "2.0", "id": request["id"], "result": result }))
                        }
                        Reply::Malformed(result) => {
                            Reply::Json(json!({ "jsonrpc": "2.0", "id": request["id"], "result": result }))
                        }
                        Reply::Error(code, message) => Reply::Json(
                            json!({ "jsonrpc": "2.0", "id": request["id"], "error": { "code": code, "message": message } }),
                        ),
                        other => other,
                    }
                }
            }
        };
        let (status, body) = match reply {
            Reply::Json(v) => (200, v.to_string()),
            Reply::Http(status, text) => (status, text.to_string()),
            Reply::Malformed(_) | Reply::Error(..) => unreachable!("sent as Json"),
        };
        let kind = if status == 200 { "application/json" } else { "text/plain" };
        write!(
            out,
            "HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    }
}

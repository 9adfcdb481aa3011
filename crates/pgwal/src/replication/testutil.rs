//! Test helpers: backend message builders, a frontend message parser and a SCRAM-SHA-256
//! server, for byte-level tests of the protocol core and the driver.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// A backend message: tag, length, body.
pub(crate) fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

pub(crate) fn auth_request(code: i32, extra: &[u8]) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend_from_slice(extra);
    message(b'R', &b)
}

pub(crate) fn auth_ok() -> Vec<u8> {
    auth_request(0, &[])
}

pub(crate) fn auth_cleartext() -> Vec<u8> {
    auth_request(3, &[])
}

pub(crate) fn auth_md5(salt: [u8; 4]) -> Vec<u8> {
    auth_request(5, &salt)
}

pub(crate) fn auth_sasl(mechanisms: &[&str]) -> Vec<u8> {
    let mut b = Vec::new();
    for m in mechanisms {
        cstr(&mut b, m);
    }
    b.push(0);
    auth_request(10, &b)
}

pub(crate) fn sasl_continue(data: &[u8]) -> Vec<u8> {
    auth_request(11, data)
}

pub(crate) fn sasl_final(data: &[u8]) -> Vec<u8> {
    auth_request(12, data)
}

pub(crate) fn param_status(name: &str, value: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, name);
    cstr(&mut b, value);
    message(b'S', &b)
}

pub(crate) fn backend_key(pid: i32, key: i32) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    b.extend_from_slice(&key.to_be_bytes());
    message(b'K', &b)
}

pub(crate) fn ready() -> Vec<u8> {
    message(b'Z', b"I")
}

fn fields(tag: u8, fields: &[(u8, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (t, v) in fields {
        b.push(*t);
        cstr(&mut b, v);
    }
    b.push(0);
    message(tag, &b)
}

pub(crate) fn error(f: &[(u8, &str)]) -> Vec<u8> {
    fields(b'E', f)
}

pub(crate) fn notice(f: &[(u8, &str)]) -> Vec<u8> {
    fields(b'N', f)
}

pub(crate) fn row_description(cols: &[(&str, u32)]) -> Vec<u8> {
    let mut b = (cols.len() as u16).to_be_bytes().to_vec();
    for (name, oid) in cols {
        cstr(&mut b, name);
        b.extend_from_slice(&0u32.to_be_bytes()); // table oid
        b.extend_from_slice(&0i16.to_be_bytes()); // attnum
        b.extend_from_slice(&oid.to_be_bytes()); // type oid
        b.extend_from_slice(&(-1i16).to_be_bytes()); // typlen
        b.extend_from_slice(&(-1i32).to_be_bytes()); // typmod
        b.extend_from_slice(&0i16.to_be_bytes()); // text format
    }
    message(b'T', &b)
}

pub(crate) fn data_row(values: &[Option<&str>]) -> Vec<u8> {
    let v: Vec<Option<&[u8]>> = values.iter().map(|v| v.map(str::as_bytes)).collect();
    data_row_bytes(&v)
}

pub(crate) fn data_row_bytes(values: &[Option<&[u8]>]) -> Vec<u8> {
    let mut b = (values.len() as u16).to_be_bytes().to_vec();
    for v in values {
        match v {
            Some(v) => {
                b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                b.extend_from_slice(v);
            }
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    message(b'D', &b)
}

pub(crate) fn command_complete(tag: &str) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, tag);
    message(b'C', &b)
}

pub(crate) fn empty_query() -> Vec<u8> {
    message(b'I', &[])
}

pub(crate) fn copy_both() -> Vec<u8> {
    message(b'W', &[0, 0, 0])
}

pub(crate) fn copy_data(payload: &[u8]) -> Vec<u8> {
    message(b'd', payload)
}

pub(crate) fn copy_done() -> Vec<u8> {
    message(b'c', &[])
}

pub(crate) fn xlogdata(start: u64, wal_end: u64, time: i64, data: &[u8]) -> Vec<u8> {
    let mut b = vec![b'w'];
    b.extend_from_slice(&start.to_be_bytes());
    b.extend_from_slice(&wal_end.to_be_bytes());
    b.extend_from_slice(&time.to_be_bytes());
    b.extend_from_slice(data);
    b
}

pub(crate) fn keepalive(wal_end: u64, time: i64, reply: bool) -> Vec<u8> {
    let mut b = vec![b'k'];
    b.extend_from_slice(&wal_end.to_be_bytes());
    b.extend_from_slice(&time.to_be_bytes());
    b.push(u8::from(reply));
    b
}

/// A frontend message as a server sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FrontendMsg {
    Password(Vec<u8>),
    SaslInitial { mechanism: String, data: Vec<u8> },
    SaslResponse(Vec<u8>),
    Query(String),
    CopyData(Vec<u8>),
    CopyDone,
    Terminate,
    Other(u8, Vec<u8>),
}

/// The (key, value) pairs of a StartupMessage.
pub(crate) fn parse_startup(b: &[u8]) -> Vec<(String, String)> {
    let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    assert_eq!(len, b.len(), "startup length");
    assert_eq!(&b[4..8], &[0, 3, 0, 0], "protocol 3.0");
    let strs: Vec<String> = b[8..len - 2]
        .split(|c| *c == 0)
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect();
    assert_eq!(b[len - 1], 0);
    strs.chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

/// Splits frontend bytes (after the startup packet) into messages.
pub(crate) fn parse_frontend(mut b: &[u8]) -> Vec<FrontendMsg> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let tag = b[0];
        let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        let body = &b[5..1 + len];
        b = &b[1 + len..];
        out.push(match tag {
            b'p' => {
                let mech_end = body.iter().position(|c| *c == 0);
                match mech_end {
                    Some(e) if body[..e].starts_with(b"SCRAM-SHA-256") => {
                        let mechanism = String::from_utf8(body[..e].to_vec()).unwrap();
                        let n = i32::from_be_bytes([
                            body[e + 1],
                            body[e + 2],
                            body[e + 3],
                            body[e + 4],
                        ]);
                        let data = body[e + 5..].to_vec();
                        assert_eq!(n as usize, data.len());
                        FrontendMsg::SaslInitial { mechanism, data }
                    }
                    _ if body.last() == Some(&0) => {
                        FrontendMsg::Password(body[..body.len() - 1].to_vec())
                    }
                    _ => FrontendMsg::SaslResponse(body.to_vec()),
                }
            }
            b'Q' => FrontendMsg::Query(String::from_utf8(body[..body.len() - 1].to_vec()).unwrap()),
            b'd' => FrontendMsg::CopyData(body.to_vec()),
            b'c' => FrontendMsg::CopyDone,
            b'X' => FrontendMsg::Terminate,
            t => FrontendMsg::Other(t, body.to_vec()),
        });
    }
    out
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The server side of SCRAM-SHA-256(-PLUS), as in RFC 5802/7677 (ASCII passwords only).
pub(crate) struct ScramServer {
    password: String,
    channel_binding: Option<Vec<u8>>,
    salt: Vec<u8>,
    iterations: u32,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    pub(crate) fn new(password: &str, channel_binding: Option<Vec<u8>>) -> ScramServer {
        ScramServer {
            password: password.to_owned(),
            channel_binding,
            salt: b"NaCl-salt-16byte".to_vec(),
            iterations: 4096,
            gs2_header: String::new(),
            client_first_bare: String::new(),
            server_first: String::new(),
            nonce: String::new(),
        }
    }

    fn salted_password(&self) -> Vec<u8> {
        // PBKDF2-HMAC-SHA-256 with one output block.
        let mut block = self.salt.clone();
        block.extend_from_slice(&1u32.to_be_bytes());
        let mut u = hmac(self.password.as_bytes(), &block);
        let mut out = u.clone();
        for _ in 1..self.iterations {
            u = hmac(self.password.as_bytes(), &u);
            for (o, x) in out.iter_mut().zip(&u) {
                *o ^= x;
            }
        }
        out
    }

    /// Handles client-first-message; returns server-first-message.
    pub(crate) fn client_first(&mut self, data: &[u8]) -> Result<String, String> {
        let s = std::str::from_utf8(data).map_err(|e| e.to_string())?;
        // gs2-header is "cbflag,authzid," — up to the second comma.
        let first = s.find(',').ok_or("no gs2 header")?;
        let second = first + 1 + s[first + 1..].find(',').ok_or("no gs2 header")?;
        self.gs2_header = s[..=second].to_owned();
        self.client_first_bare = s[second + 1..].to_owned();
        let cnonce = self
            .client_first_bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .ok_or("no nonce")?;
        match (&self.channel_binding, self.gs2_header.as_str()) {
            (Some(_), h) if h.starts_with("p=tls-server-end-point") => {}
            (_, "n,," | "y,,") => {}
            (_, h) => return Err(format!("unexpected gs2 header {h}")),
        }
        self.nonce = format!("{cnonce}srvNONCE");
        self.server_first = format!(
            "r={},s={},i={}",
            self.nonce,
            B64.encode(&self.salt),
            self.iterations
        );
        Ok(self.server_first.clone())
    }

    fn auth_message(&self, final_without_proof: &str) -> String {
        format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, final_without_proof
        )
    }

    /// Handles client-final-message; checks the binding data and the proof and returns
    /// server-final-message.
    pub(crate) fn client_final(&mut self, data: &[u8]) -> Result<String, String> {
        let s = std::str::from_utf8(data).map_err(|e| e.to_string())?;
        let proof_at = s.rfind(",p=").ok_or("no proof")?;
        let without_proof = &s[..proof_at];
        let proof = B64.decode(&s[proof_at + 3..]).map_err(|e| e.to_string())?;
        let c = without_proof
            .split(',')
            .find_map(|a| a.strip_prefix("c="))
            .ok_or("no c=")?;
        let mut expected_c = self.gs2_header.as_bytes().to_vec();
        if self.gs2_header.starts_with("p=") {
            expected_c.extend_from_slice(self.channel_binding.as_deref().unwrap_or_default());
        }
        if B64.decode(c).map_err(|e| e.to_string())? != expected_c {
            return Err("channel binding mismatch".into());
        }
        let r = without_proof
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .ok_or("no r=")?;
        if r != self.nonce {
            return Err("nonce mismatch".into());
        }
        let salted = self.salted_password();
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key).to_vec();
        let auth = self.auth_message(without_proof);
        let client_sig = hmac(&stored_key, auth.as_bytes());
        let recovered: Vec<u8> = proof.iter().zip(&client_sig).map(|(a, b)| a ^ b).collect();
        if Sha256::digest(&recovered).to_vec() != stored_key {
            return Err("password authentication failed".into());
        }
        Ok(self.server_final_unchecked(data))
    }

    /// The server-final-message for this exchange, without checking the client's proof.
    pub(crate) fn server_final_unchecked(&self, data: &[u8]) -> String {
        let s = String::from_utf8_lossy(data);
        let without_proof = &s[..s.rfind(",p=").unwrap_or(s.len())];
        let salted = self.salted_password();
        let server_key = hmac(&salted, b"Server Key");
        let sig = hmac(&server_key, self.auth_message(without_proof).as_bytes());
        format!("v={}", B64.encode(sig))
    }
}

//! Real object-storage servers for the archive tests: a SeaweedFS cluster (master, two volume
//! servers, a filer with its S3 gateway, signed requests) and Azurite's blob service, on free
//! loopback ports, from the builds `scripts/install-objstore` caches.
//!
//! Both are torn down in `Drop` (processes killed, data removed); the children also get
//! `PR_SET_PDEATHSIG`, so a test process killed outright takes them with it.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{pick_port, pick_port_with_offset};
use crate::error::{Error, IoContext, Result};
use crate::os::testkit_root;

/// The access key of the S3 identity the kit configures in SeaweedFS.
pub const S3_ACCESS_KEY: &str = "PGWALTESTACCESSKEY";
/// Its secret key (a test value; the tests check that no output ever contains it).
pub const S3_SECRET_KEY: &str = "pgwal-test-secret-0123456789abcdef";
/// The Azurite account the kit uses: Azurite's well-known development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Its key (Azurite's published development key).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The cache `scripts/install-objstore` fills: `$PGWAL_OBJSTORE_DIR`, else
/// `/var/cache/pgwal/objstore` as root, `$HOME/.cache/pgwal/objstore` otherwise.
pub fn objstore_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PGWAL_OBJSTORE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if crate::os::is_root() {
        return PathBuf::from("/var/cache/pgwal/objstore");
    }
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from("/var/cache/pgwal/objstore"),
        |h| PathBuf::from(h).join(".cache/pgwal/objstore"),
    )
}

fn installed(path: PathBuf) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Other(format!(
            "{} is not installed; run scripts/install-objstore",
            path.display()
        )))
    }
}

/// A scratch directory of the kit, removed on drop unless `PGWAL_TESTKIT_KEEP=1`.
fn scratch(kind: &str) -> Result<PathBuf> {
    let root = testkit_root();
    crate::os::ensure_shared_dir(&root)?;
    // What servers of dead test processes left (servers shared by a whole test binary are
    // never dropped).
    if let Ok(rd) = fs::read_dir(&root) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(&format!("{kind}-"))
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|p| !crate::os::pid_alive(p)) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = root.join(format!(
        "{kind}-{}-{:x}",
        std::process::id(),
        pick_port() as u64 * 7919 + Instant::now().elapsed().subsec_nanos() as u64
    ));
    fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

fn keep() -> bool {
    std::env::var("PGWAL_TESTKIT_KEEP").is_ok_and(|v| v == "1")
}

/// One server process with its log file.
#[derive(Debug)]
struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    cmd: Vec<String>,
}

impl Proc {
    fn spawn(name: &str, dir: &Path, program: &Path, args: &[String]) -> Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        let out = fs::File::create(&log).ctx(|| format!("create {}", log.display()))?;
        let err = out.try_clone().ctx(|| format!("dup {}", log.display()))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe; the closure touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .ctx(|| format!("start {} ({})", name, program.display()))?;
        Ok(Proc {
            name: name.to_owned(),
            child: Some(child),
            log,
            cmd: std::iter::once(program.display().to_string())
                .chain(args.iter().cloned())
                .collect(),
        })
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(c) = &mut self.child {
            if let Ok(Some(status)) = c.try_wait() {
                return Err(Error::Command {
                    command: self.cmd.join(" "),
                    status: status.to_string(),
                    stdout: String::new(),
                    stderr: String::new(),
                    log_tail: self.log_tail(),
                });
            }
        }
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1: the status code and body, or `None` if nothing answered.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_with(port, path, "")
}

/// [`http_get`] with extra header lines (`headers`, each ending in `\r\n`).
fn http_get_with(port: u16, path: &str, headers: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    Some((code, body))
}

fn wait_until(
    what: &str,
    timeout: Duration,
    procs: &mut [&mut Proc],
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if ready() {
            return Ok(());
        }
        for p in procs.iter_mut() {
            p.check_alive()?;
        }
        if start.elapsed() > timeout {
            let log_tail = procs
                .iter()
                .map(|p| format!("[{}]\n{}", p.name, p.log_tail()))
                .collect::<Vec<_>>()
                .join("\n");
            return Err(Error::Timeout {
                what: what.to_owned(),
                after: start.elapsed(),
                log_tail,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running SeaweedFS cluster: a master, two volume servers (replication `001`: every volume
/// has a copy on both), and a filer with its S3 gateway, which checks request signatures
/// against one identity ([`S3_ACCESS_KEY`], [`S3_SECRET_KEY`]).
#[derive(Debug)]
pub struct SeaweedFs {
    dir: PathBuf,
    weed: PathBuf,
    master_port: u16,
    filer_port: u16,
    s3_port: u16,
    filer: Proc,
    /// The filer's arguments, to start it again after [`SeaweedFs::stop_gateway`].
    filer_args: Vec<String>,
    volumes: Vec<Proc>,
    /// Each volume server's arguments and port, to start it again after
    /// [`SeaweedFs::kill_volume`].
    volume_args: Vec<(Vec<String>, u16)>,
    master: Proc,
}

impl SeaweedFs {
    /// Starts the cluster and waits until its S3 gateway answers and both volume servers have
    /// joined the master.
    pub fn start() -> Result<SeaweedFs> {
        let weed = installed(objstore_dir().join("seaweedfs/weed"))?;
        let dir = scratch("seaweedfs")?;
        let s3_config = dir.join("s3.json");
        fs::write(
            &s3_config,
            format!(
                r#"{{"identities":[{{"name":"pgwal","credentials":[{{"accessKey":"{S3_ACCESS_KEY}","secretKey":"{S3_SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .ctx(|| format!("write {}", s3_config.display()))?;
        let grpc = Some(10000);
        let master_port = pick_port_with_offset(grpc);
        let ip = |p: u16| -> Vec<String> {
            vec![
                "-ip=127.0.0.1".into(),
                "-ip.bind=127.0.0.1".into(),
                format!("-port={p}"),
            ]
        };
        let sub = |name: &str| -> Result<PathBuf> {
            let d = dir.join(name);
            fs::create_dir_all(&d).ctx(|| format!("create {}", d.display()))?;
            Ok(d)
        };
        let mut args = vec!["master".to_owned()];
        args.extend(ip(master_port));
        args.extend([
            format!("-mdir={}", sub("master")?.display()),
            "-defaultReplication=001".into(),
            "-volumeSizeLimitMB=32".into(),
        ]);
        let mut master = Proc::spawn("master", &dir, &weed, &args)?;
        wait_until(
            "the SeaweedFS master",
            Duration::from_secs(60),
            &mut [&mut master],
            || http_get(master_port, "/cluster/status").is_some_and(|(c, _)| c == 200),
        )?;
        let mut volumes = Vec::new();
        let mut volume_ports = Vec::new();
        let mut volume_args = Vec::new();
        for i in 0..2 {
            let port = pick_port_with_offset(grpc);
            let mut args = vec!["volume".to_owned()];
            args.extend(ip(port));
            args.extend([
                format!("-dir={}", sub(&format!("volume{i}"))?.display()),
                "-max=0".into(),
                format!("-mserver=127.0.0.1:{master_port}"),
            ]);
            volumes.push(Proc::spawn(&format!("volume{i}"), &dir, &weed, &args)?);
            volume_ports.push(port);
            volume_args.push((args, port));
        }
        {
            let mut procs: Vec<&mut Proc> = volumes.iter_mut().collect();
            procs.push(&mut master);
            wait_until(
                "both SeaweedFS volume servers to join the master",
                Duration::from_secs(60),
                &mut procs,
                || {
                    http_get(master_port, "/dir/status").is_some_and(|(c, body)| {
                        c == 200
                            && volume_ports
                                .iter()
                                .all(|p| body.contains(&format!("127.0.0.1:{p}")))
                    })
                },
            )?;
        }
        let filer_port = pick_port_with_offset(grpc);
        let s3_port = pick_port_with_offset(grpc);
        let mut args = vec!["filer".to_owned()];
        args.extend(ip(filer_port));
        args.extend([
            format!("-master=127.0.0.1:{master_port}"),
            "-s3".into(),
            format!("-s3.port={s3_port}"),
            format!("-s3.config={}", s3_config.display()),
            // Fixed default ports otherwise (8181, 9101): off.
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            format!("-defaultStoreDir={}", sub("filer")?.display()),
        ]);
        let mut filer = Proc::spawn("filer", &dir, &weed, &args)?;
        wait_until(
            "the SeaweedFS S3 gateway",
            Duration::from_secs(60),
            &mut [&mut filer],
            || http_get(s3_port, "/").is_some(),
        )?;
        Ok(SeaweedFs {
            dir,
            weed,
            master_port,
            filer_port,
            s3_port,
            filer,
            filer_args: args,
            volumes,
            volume_args,
            master,
        })
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The S3 gateway's port.
    pub fn s3_port(&self) -> u16 {
        self.s3_port
    }

    /// Creates bucket `name` (through `weed shell`).
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        let mut child = Command::new(&self.weed)
            .arg("shell")
            .arg(format!("-master=127.0.0.1:{}", self.master_port))
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ctx(|| "start weed shell".to_owned())?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "s3.bucket.create -name {name}").ctx(|| "weed shell".to_owned())?;
        }
        let out = child.wait_with_output().ctx(|| "weed shell".to_owned())?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || !stdout.contains("created bucket") {
            return Err(Error::Command {
                command: format!("weed shell: s3.bucket.create -name {name}"),
                status: out.status.to_string(),
                stdout,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                log_tail: self.filer.log_tail(),
            });
        }
        Ok(())
    }

    /// The environment a client needs to reach the gateway: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Stops the filer and its S3 gateway (SIGKILL): requests to the endpoint are refused
    /// until [`SeaweedFs::start_gateway`].
    pub fn stop_gateway(&mut self) {
        self.filer.kill();
    }

    /// Starts the filer and its S3 gateway again (same ports and store) and waits until the
    /// gateway answers.
    pub fn start_gateway(&mut self) -> Result<()> {
        self.filer = Proc::spawn("filer-again", &self.dir, &self.weed, &self.filer_args)?;
        let port = self.s3_port;
        wait_until(
            "the SeaweedFS S3 gateway (restarted)",
            Duration::from_secs(60),
            &mut [&mut self.filer],
            || http_get(port, "/").is_some(),
        )
    }

    /// Kills volume server `i` (0 or 1) with SIGKILL.
    pub fn kill_volume(&mut self, i: usize) {
        if let Some(v) = self.volumes.get_mut(i) {
            v.kill();
        }
    }

    /// Starts volume server `i` again after [`SeaweedFs::kill_volume`] (same data directory
    /// and ports) and waits until it answers and the master lists it.
    pub fn restart_volume(&mut self, i: usize) -> Result<()> {
        let (args, port) = self
            .volume_args
            .get(i)
            .cloned()
            .ok_or_else(|| Error::Other(format!("no volume server {i}")))?;
        self.volumes[i] = Proc::spawn(&format!("volume{i}-again"), &self.dir, &self.weed, &args)?;
        let master_port = self.master_port;
        wait_until(
            &format!("SeaweedFS volume server {i} (restarted) to join the master"),
            Duration::from_secs(60),
            &mut [&mut self.volumes[i], &mut self.master],
            || {
                http_get(port, "/status").is_some_and(|(c, _)| c == 200)
                    && http_get(master_port, "/dir/status").is_some_and(|(c, body)| {
                        c == 200 && body.contains(&format!("127.0.0.1:{port}"))
                    })
            },
        )
    }

    /// The multipart uploads of `bucket` that were started and neither completed nor aborted:
    /// the entries of the filer's `/buckets/BUCKET/.uploads/` directory, where the S3 gateway
    /// keeps them (one directory per upload id), read through the filer's HTTP API.
    pub fn open_multipart_uploads(&self, bucket: &str) -> Result<Vec<String>> {
        let path = format!("/buckets/{bucket}/.uploads/");
        let (code, body) = http_get_with(self.filer_port, &path, "Accept: application/json\r\n")
            .ok_or_else(|| Error::Other(format!("the filer did not answer GET {path}")))?;
        match code {
            // No upload was ever started in the bucket.
            404 => Ok(Vec::new()),
            200 => Ok(json_strings(&body, "FullPath")),
            _ => Err(Error::Other(format!(
                "filer GET {path}: status {code}: {body}"
            ))),
        }
    }
}

/// Every string value of key `key` in the JSON text `json` (flat values without escapes, as
/// the filer's listing has them).
fn json_strings(json: &str, key: &str) -> Vec<String> {
    let pat = format!("\"{key}\":");
    json.match_indices(&pat)
        .filter_map(|(at, _)| {
            let rest = json[at + pat.len()..].trim_start().strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.filer.kill();
        for v in &mut self.volumes {
            v.kill();
        }
        self.master.kill();
        if !keep() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A running Azurite blob service, account [`AZURITE_ACCOUNT`] with key [`AZURITE_KEY`].
#[derive(Debug)]
pub struct Azurite {
    dir: PathBuf,
    port: u16,
    proc: Proc,
}

/// Creates a container with a SharedKey-signed `PUT ?restype=container` (node's crypto and http).
const CREATE_CONTAINER_JS: &str = r#"
const crypto = require('crypto'), http = require('http');
const [port, account, key, name] = process.argv.slice(1);
const date = new Date().toUTCString(), version = '2021-08-06';
const sts = ['PUT', '', '', '', '', '', '', '', '', '', '', '',
  `x-ms-date:${date}\nx-ms-version:${version}`,
  `/${account}/${account}/${name}\nrestype:container`].join('\n');
const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(sts, 'utf8').digest('base64');
const req = http.request({host: '127.0.0.1', port, method: 'PUT',
  path: `/${account}/${name}?restype=container`,
  headers: {'x-ms-date': date, 'x-ms-version': version, 'Content-Length': '0',
            'Authorization': `SharedKey ${account}:${sig}`}}, res => {
  let body = ''; res.on('data', d => body += d);
  res.on('end', () => { if (res.statusCode !== 201) { console.error(res.statusCode, body); process.exit(1); } });
});
req.on('error', e => { console.error(String(e)); process.exit(1); });
req.end();
"#;

impl Azurite {
    /// Starts Azurite's blob service and waits until it answers.
    pub fn start() -> Result<Azurite> {
        let bin = installed(objstore_dir().join("azurite/node_modules/.bin/azurite-blob"))?;
        let dir = scratch("azurite")?;
        let port = pick_port();
        let data = dir.join("data");
        fs::create_dir_all(&data).ctx(|| format!("create {}", data.display()))?;
        let args = vec![
            "--blobHost".to_owned(),
            "127.0.0.1".into(),
            "--blobPort".into(),
            port.to_string(),
            "--location".into(),
            data.display().to_string(),
            "--skipApiVersionCheck".into(),
            "--silent".into(),
        ];
        let mut proc = Proc::spawn("azurite", &dir, &bin, &args)?;
        wait_until(
            "Azurite's blob service",
            Duration::from_secs(90),
            &mut [&mut proc],
            || http_get(port, &format!("/{AZURITE_ACCOUNT}?comp=list")).is_some(),
        )?;
        Ok(Azurite { dir, port, proc })
    }

    /// The blob endpoint, `http://127.0.0.1:PORT` (object_store's `AZURITE_BLOB_STORAGE_URL`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates container `name`.
    pub fn create_container(&self, name: &str) -> Result<()> {
        let out = Command::new("node")
            .args([
                "-e",
                CREATE_CONTAINER_JS,
                &self.port.to_string(),
                AZURITE_ACCOUNT,
                AZURITE_KEY,
                name,
            ])
            .output()
            .ctx(|| "run node".to_owned())?;
        if !out.status.success() {
            return Err(Error::Command {
                command: format!("create container {name}"),
                status: out.status.to_string(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                log_tail: self.proc.log_tail(),
            });
        }
        Ok(())
    }

    /// The environment a client needs: `AZURE_STORAGE_USE_EMULATOR`, `AZURITE_BLOB_STORAGE_URL`,
    /// `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AZURE_STORAGE_USE_EMULATOR", "true".to_owned()),
            ("AZURITE_BLOB_STORAGE_URL", self.endpoint()),
            ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT.to_owned()),
            ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY.to_owned()),
            ("AZURE_ALLOW_HTTP", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.proc.kill();
        if !keep() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

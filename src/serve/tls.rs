//! HTTPS for `https://` routes: the local certificate authority, the leaf
//! certificates it issues for the names clients ask for (SNI), and the
//! rustls server configuration that presents them.
//!
//! The CA (`ca.pem`, and `ca-key.pem` with mode 0600) lives in a directory
//! (`INTERCEPT_CA_DIR`, default `~/.cache/intercept/ca`), is made on first
//! use under an exclusive lock, so processes racing to create it agree on
//! one, and is reused afterwards. Leaf certificates are made in memory, once
//! per name per process, valid from a day ago for 30 days.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The CA certificate's file in the CA directory, PEM.
pub const CA_FILE: &str = "ca.pem";
/// The CA private key's file in the CA directory, PEM, mode 0600.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The CA certificate's common name.
pub const CA_NAME: &str = "intercept local CA";

/// The local certificate authority.
pub struct Authority {
    /// The directory holding [`CA_FILE`] and [`CA_KEY_FILE`].
    pub dir: PathBuf,
    pub(crate) ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    provider: Arc<CryptoProvider>,
    leaves: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    configs: Mutex<HashMap<(String, bool), Arc<rustls::ServerConfig>>>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl Authority {
    /// Loads the CA from `dir`, creating it first if it is not there.
    pub fn open(dir: &Path) -> io::Result<Authority> {
        let (cert_pem, key_pem) = load_or_create(dir)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| other(format!("{}: {e}", dir.join(CA_KEY_FILE).display())))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| other(format!("{}: {e}", dir.join(CA_FILE).display())))?;
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| other(format!("{}: {e:?}", dir.join(CA_FILE).display())))?;
        Ok(Authority {
            dir: dir.to_path_buf(),
            ca_der: der,
            issuer,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            leaves: Mutex::new(HashMap::new()),
            configs: Mutex::new(HashMap::new()),
        })
    }

    /// A certificate for `name` (a host name or an IP address), made once.
    fn leaf(&self, name: &str) -> Result<Arc<CertifiedKey>, rustls::Error> {
        if let Some(found) = self.leaves.lock().get(name) {
            return Ok(found.clone());
        }
        let fail = |e: rcgen::Error| rustls::Error::General(format!("cannot make a certificate for {name}: {e}"));
        let mut params = CertificateParams::new(vec![name.to_string()]).map_err(fail)?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(86_400)).into();
        params.not_after = (now + Duration::from_secs(30 * 86_400)).into();
        let key = KeyPair::generate().map_err(fail)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(fail)?;
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = self.provider.key_provider.load_private_key(private)?;
        let certified = Arc::new(CertifiedKey::new(vec![cert.der().clone(), self.ca_der.clone()], signing));
        self.leaves.lock().insert(name.to_string(), certified.clone());
        Ok(certified)
    }

    /// The server configuration for a connection to `host`: the certificate
    /// follows SNI, and `host` is used when the client sends none (an
    /// address literal). ALPN offers h2, then http/1.1, or with `h2` false
    /// http/1.1 alone.
    pub fn server_config(self: &Arc<Self>, host: &str, h2: bool) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        let key = (host.to_string(), h2);
        if let Some(found) = self.configs.lock().get(&key) {
            return Ok(found.clone());
        }
        let resolver = Arc::new(BySni { authority: self.clone(), fallback: host.to_string() });
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = if h2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
        // No TLS 1.3 session tickets. Nothing resumes a session with us
        // across processes, and a ticket arrives just after the handshake,
        // when many clients start writing their request: a client that
        // reads the socket on one thread while writing it on another
        // (Python's `websockets` with OpenSSL) can then lose its request,
        // against any server that sends tickets.
        config.send_tls13_tickets = 0;
        let config = Arc::new(config);
        self.configs.lock().insert(key, config.clone());
        Ok(config)
    }
}

/// Picks the certificate by the name the client asked for.
struct BySni {
    authority: Arc<Authority>,
    fallback: String,
}

impl std::fmt::Debug for BySni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BySni({})", self.fallback)
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(crate::config::route::normalize_name).unwrap_or_else(|| self.fallback.clone());
        match self.authority.leaf(&name) {
            Ok(leaf) => Some(leaf),
            Err(e) => {
                crate::log_error!("{e}");
                None
            }
        }
    }
}

/// The process's authority, opened on the first https connection.
pub fn authority(dir: &Path) -> io::Result<Arc<Authority>> {
    static AUTHORITY: OnceLock<Arc<Authority>> = OnceLock::new();
    if let Some(a) = AUTHORITY.get() {
        return Ok(a.clone());
    }
    let opened = Arc::new(Authority::open(dir)?);
    Ok(AUTHORITY.get_or_init(|| opened).clone())
}

/// Reads the CA's PEM files, creating them under an exclusive lock if they
/// are missing. Returns (certificate, key).
pub fn load_or_create(dir: &Path) -> io::Result<(String, String)> {
    guarded(dir)?;
    let read =
        || -> io::Result<(String, String)> { Ok((fs::read_to_string(dir.join(CA_FILE))?, fs::read_to_string(dir.join(CA_KEY_FILE))?)) };
    if let Ok(found) = read() {
        return Ok(found);
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let lock = OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(dir.join(".lock"))?;
    // Released when `lock` is dropped.
    lock.lock()?;
    if let Ok(found) = read() {
        return Ok(found); // another process made it while we waited
    }
    let fail = |e: rcgen::Error| other(format!("cannot make the CA: {e}"));
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.distinguished_name.push(DnType::OrganizationName, "intercept");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(86_400)).into();
    params.not_after = (now + Duration::from_secs(365 * 86_400)).into();
    let key = KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    // The key first: a CA certificate is never visible without its key.
    write_atomically(&dir.join(CA_KEY_FILE), key_pem.as_bytes(), 0o600)?;
    write_atomically(&dir.join(CA_FILE), cert_pem.as_bytes(), 0o644)?;
    Ok((cert_pem, key_pem))
}

/// Refuses a CA whose private key others could read or replace, as ssh
/// refuses such a key: `ca-key.pem` readable by group or others, or a CA
/// directory that group or others may write to.
fn guarded(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let refuse = |what: &Path, mode: u32, why: &str| {
        Err(other(format!(
            "{} is {why} (mode {:o}): `chmod go-rwx` it, or remove the CA directory to make a new CA",
            what.display(),
            mode & 0o777
        )))
    };
    if let Ok(meta) = fs::metadata(dir) {
        let mode = meta.permissions().mode();
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return refuse(dir, mode, "writable by others");
        }
    }
    let key = dir.join(CA_KEY_FILE);
    if let Ok(meta) = fs::metadata(&key) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return refuse(&key, mode, "readable by others");
        }
    }
    Ok(())
}

/// Writes a file whole or not at all: a temporary file, then a rename.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut file: File = OpenOptions::new().create(true).truncate(true).write(true).mode(mode).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    /// A CA directory that does not exist yet, inside a guarded one.
    fn temp(name: &str) -> (crate::testing::TempDir, PathBuf) {
        crate::testing::temp_path(name, "ca")
    }

    #[test]
    fn the_ca_is_made_once_with_a_private_key_file() {
        let (_guard, dir) = temp("once");
        let first = load_or_create(&dir).unwrap();
        assert_eq!(load_or_create(&dir).unwrap(), first);
        assert_eq!(fs::metadata(dir.join(CA_KEY_FILE)).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(first.0.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn a_key_others_can_read_or_replace_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let (_guard, dir) = temp("hygiene");
        load_or_create(&dir).unwrap();
        let key = dir.join(CA_KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create(&dir).unwrap_err().to_string();
        assert!(e.contains("ca-key.pem is readable by others (mode 644)"), "{e}");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let e = load_or_create(&dir).unwrap_err().to_string();
        assert!(e.contains("is writable by others (mode 777)"), "{e}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(load_or_create(&dir).is_ok());
    }

    #[test]
    fn the_ca_is_valid_for_a_year() {
        let (_guard, dir) = temp("year");
        let (cert, _) = load_or_create(&dir).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
        let parsed = pem.parse_x509().unwrap();
        let days = (parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp()) / 86_400;
        assert_eq!(days, 366, "a day back for clock skew, a year forward");
    }

    #[test]
    fn racing_threads_agree_on_one_ca() {
        let (_guard, dir) = temp("race");
        let made: Vec<_> = (0..8)
            .map(|_| {
                let d = dir.clone();
                std::thread::spawn(move || load_or_create(&d).unwrap())
            })
            .collect();
        let made: Vec<_> = made.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(made.iter().all(|m| *m == made[0]));
    }

    /// A full handshake in memory: a rustls client that trusts only our CA
    /// talks to the server config, with SNI and ALPN.
    #[test]
    fn a_client_trusting_the_ca_verifies_the_leaf() {
        let (_guard, dir) = temp("handshake");
        let authority = Arc::new(Authority::open(&dir).unwrap());
        let server_config = authority.server_config("fallback.test", true).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(authority.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let name = rustls::pki_types::ServerName::try_from("api.example.test").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut server = rustls::ServerConnection::new(server_config).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            server.read_tls(&mut &buf[..]).unwrap();
            server.process_new_packets().unwrap();
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            client.read_tls(&mut &buf[..]).unwrap();
            client.process_new_packets().unwrap();
        }
        assert!(!client.is_handshaking());
        // Nothing follows the handshake: no session ticket.
        assert_eq!(client.tls13_tickets_received(), 0);
        // h2 first, as offered; a relaying route offers http/1.1 alone.
        assert_eq!(client.alpn_protocol(), Some(&b"h2"[..]));
        assert_eq!(authority.server_config("fallback.test", false).unwrap().alpn_protocols, [b"http/1.1".to_vec()]);
        client.writer().write_all(b"ping").unwrap();
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        server.read_tls(&mut &buf[..]).unwrap();
        server.process_new_packets().unwrap();
        let mut got = [0u8; 4];
        server.reader().read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
    }
}

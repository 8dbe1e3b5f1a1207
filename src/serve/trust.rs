//! Making every client trust the local CA with no flag of its own.
//!
//! `intercept run` writes a trust bundle — the system CAs, the CA files the
//! user already named in a trust variable or an npm `cafile`, and the
//! intercept CA — and a Java truststore (JKS) with the same certificates,
//! then points every variable a common client reads at the bundle. Clients
//! that read no variable but a fixed system path (libcurl's and GnuTLS's
//! compiled-in bundle, Perl LWP's, Java's `cacerts`, the `certifi` bundle
//! pycurl uses) are served these files instead when the shim sees them open
//! that path: [`redirect`] says which paths, and to what.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::tls::{CA_FILE, CA_NAME, load_or_create, write_atomically};

/// Where the system's trusted CAs are, on the common distributions.
pub const SYSTEM_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The first system bundle that exists.
pub fn system_bundle() -> Option<PathBuf> {
    SYSTEM_BUNDLES.into_iter().map(PathBuf::from).find(|p| p.is_file())
}

/// The variables common clients read for their trusted CAs: each is set to
/// the bundle, and a file the user had named in one is kept in it.
pub const TRUST_VARIABLES: &[&str] = &[
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "AWS_CA_BUNDLE",
    "HTTPLIB2_CA_CERTS",
    "PIP_CERT",
    "CARGO_HTTP_CAINFO",
    "PERL_LWP_SSL_CA_FILE",
    // npm's `cafile`: a configured one replaces Node's roots, so
    // NODE_EXTRA_CA_CERTS alone would not do; the variable wins over every
    // npmrc, and the cafiles of those are kept in the bundle.
    "npm_config_cafile",
];

/// The variable that tells the shim where the bundle is (set by
/// `intercept run` and `intercept env`); the truststore is beside it.
pub const BUNDLE_VARIABLE: &str = "INTERCEPT_TRUST_BUNDLE";

/// What a path a program opens for reading should be served from instead.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Redirect {
    /// A PEM bundle of trusted CAs: serve ours.
    Bundle,
    /// A Java keystore of trusted CAs: serve our truststore.
    Truststore,
}

/// Whether `path` is a trust file some client reads from a fixed place.
/// Cheap for every other path: most are rejected on their first bytes.
pub fn redirect(path: &[u8]) -> Option<Redirect> {
    match path {
        [b'/', b'e', b't', b'c', b'/', ..] | [b'/', b'u', b's', b'r', b'/', ..] => {}
        _ => return path.ends_with(b"/certifi/cacert.pem").then_some(Redirect::Bundle),
    }
    if SYSTEM_BUNDLES.iter().any(|b| b.as_bytes() == path) || path.ends_with(b"/certifi/cacert.pem") {
        return Some(Redirect::Bundle);
    }
    let java = path == b"/etc/ssl/certs/java/cacerts" || path == b"/etc/pki/java/cacerts" || path.ends_with(b"/lib/security/cacerts");
    java.then_some(Redirect::Truststore)
}

/// Whether a loaded object of this file name (`libssl.so.3`, a wheel's
/// renamed `libssl-8b66dd34.so.3`) verifies peers against trust files:
/// OpenSSL, GnuTLS, NSS, a JVM. Only a process with one loaded is served
/// our bundle in place of the system's, so an edit of the system file
/// (`sed -i`, `cp`, `tee -a`) acts on the real one.
pub fn verifies_peers(library: &[u8]) -> bool {
    const PREFIXES: [&[u8]; 5] = [b"libssl", b"libcrypto", b"libgnutls", b"libnss3", b"libjvm"];
    let file = library.rsplit(|&b| b == b'/').next().unwrap_or(library);
    PREFIXES.iter().any(|p| file.starts_with(p))
}

/// The truststore written beside a bundle.
pub fn truststore_of(bundle: &Path) -> PathBuf {
    bundle.with_extension("jks")
}

/// The CA files named by `cafile=` in the npmrc files npm would read: the
/// project's, the user's, the global and the built-in one.
pub fn npm_cafiles() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut files: Vec<PathBuf> = vec![PathBuf::from(".npmrc")];
    files.extend(std::env::var_os("NPM_CONFIG_USERCONFIG").map(PathBuf::from).or_else(|| home.map(|h| h.join(".npmrc"))));
    files.extend(std::env::var_os("NPM_CONFIG_GLOBALCONFIG").map(PathBuf::from));
    files.push(PathBuf::from("/etc/npmrc"));
    files.push(PathBuf::from("/usr/etc/npmrc"));
    files.push(PathBuf::from("/usr/local/etc/npmrc"));
    let mut found = Vec::new();
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else { continue };
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else { continue };
            if key.trim() == "cafile" {
                let value = value.trim().trim_matches('"');
                let base = file.parent().unwrap_or(Path::new("."));
                found.push(base.join(value));
            }
        }
    }
    found
}

/// Writes the trust bundle and its truststore: the system CAs, the CA
/// files the user already pointed at (`user_files`), and the intercept CA.
/// Returns the bundle's path (`bundle.pem`, or `bundle-HASH.pem` when the
/// user's own files are in it, HASH of their names); the truststore is
/// [`truststore_of`] it.
pub fn write_bundle(dir: &Path, user_files: &[PathBuf]) -> io::Result<PathBuf> {
    let (ca_pem, _) = load_or_create(dir)?;
    let system = system_bundle();
    let mut parts: Vec<PathBuf> = system.iter().cloned().collect();
    // A file named twice (every variable naming the system bundle, as CI
    // images often set them) is looked at once.
    for f in user_files {
        let inside_ours = f.starts_with(dir);
        if !inside_ours && !parts.contains(f) && f.is_file() {
            parts.push(f.clone());
        }
    }
    let extra = parts.len() > usize::from(system.is_some());
    let listed: String = parts.iter().map(|p| format!("{}\n", p.display())).collect();
    let name = if extra { format!("bundle-{:016x}.pem", crate::run::fnv(listed.as_bytes())) } else { "bundle.pem".to_string() };
    let path = dir.join(name);
    let store = truststore_of(&path);
    // What the bundle was made from, taken before any of it is read: when
    // nothing changed since, the files are not read again (every `intercept
    // run` starts here).
    let sources = sources_of(dir, &parts);
    let stamp = path.with_extension("sources");
    if sources.as_ref().is_some_and(|s| fs::read_to_string(&stamp).ok().as_ref() == Some(s)) && path.is_file() && store.is_file() {
        return Ok(path);
    }
    let mut text = String::new();
    for p in &parts {
        let mut content = fs::read_to_string(p)?;
        if !content.ends_with('\n') {
            content.push('\n');
        }
        text.push_str(&format!("# from {}\n", p.display()));
        text.push_str(&content);
    }
    text.push_str(&format!("# {CA_NAME}, {}\n", dir.join(CA_FILE).display()));
    text.push_str(&ca_pem);
    if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) || !store.is_file() {
        write_atomically(&store, &jks(text.as_bytes()), 0o644)?;
        write_atomically(&path, text.as_bytes(), 0o644)?;
    }
    if let Some(sources) = sources {
        write_atomically(&stamp, sources.as_bytes(), 0o644)?;
    }
    Ok(path)
}

/// One line per file a bundle is made of, the CA's own files and the CA
/// directory included: path, size, change time, inode and mode. A change
/// to any (a new system bundle, a new CA, a `chmod`) changes it. `None`
/// when one of them cannot be looked at.
fn sources_of(dir: &Path, parts: &[PathBuf]) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let ours = [dir.join(CA_FILE), dir.join(super::tls::CA_KEY_FILE)];
    // The directory changes with every bundle written into it: only its
    // identity and mode count.
    let m = fs::metadata(dir).ok()?;
    let mut text = format!("{}\t{}\t{:o}\n", dir.display(), m.ino(), m.mode());
    for p in parts.iter().chain(&ours) {
        let m = fs::metadata(p).ok()?;
        text.push_str(&format!("{}\t{}\t{}.{}\t{}\t{:o}\n", p.display(), m.len(), m.ctime(), m.ctime_nsec(), m.ino(), m.mode()));
    }
    Some(text)
}

/// A Java keystore (JKS, version 2) of trusted-certificate entries, one per
/// certificate in the PEM text, sealed with the digest Java checks when the
/// store is opened with the default password `changeit` (or none).
fn jks(pem: &[u8]) -> Vec<u8> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect();
    let mut out = Vec::with_capacity(pem.len());
    out.extend_from_slice(&0xFEED_FEEDu32.to_be_bytes());
    out.extend_from_slice(&2u32.to_be_bytes());
    out.extend_from_slice(&(certs.len() as u32).to_be_bytes());
    let utf = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    for (i, cert) in certs.iter().enumerate() {
        out.extend_from_slice(&2u32.to_be_bytes()); // a trusted certificate
        utf(&mut out, &format!("intercept-{i}"));
        out.extend_from_slice(&0u64.to_be_bytes()); // creation date
        utf(&mut out, "X.509");
        out.extend_from_slice(&(cert.len() as u32).to_be_bytes());
        out.extend_from_slice(cert);
    }
    let mut seal = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    // The password as UTF-16BE, then this phrase, then everything above.
    "changeit".encode_utf16().for_each(|u| seal.update(&u.to_be_bytes()));
    seal.update(b"Mighty Aphrodite");
    seal.update(&out);
    out.extend_from_slice(seal.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA directory that does not exist yet, inside a guarded one.
    fn temp(name: &str) -> (crate::testing::TempDir, PathBuf) {
        crate::testing::temp_path(name, "ca")
    }

    #[test]
    fn the_bundle_holds_system_user_and_our_cas() {
        let (_guard, dir) = temp("bundle");
        let user = _guard.join("user-ca.pem");
        fs::write(&user, "# the user's own CA\n").unwrap();
        let plain = write_bundle(&dir, &[]).unwrap();
        assert_eq!(plain.file_name().unwrap(), "bundle.pem");
        let with_user = write_bundle(&dir, &[user.clone(), plain.clone()]).unwrap();
        let text = fs::read_to_string(&with_user).unwrap();
        assert!(text.contains("# the user's own CA") && text.ends_with(&load_or_create(&dir).unwrap().0));
        assert_eq!(text.matches(CA_NAME).count(), 1, "our own bundle is never nested");
    }

    #[test]
    fn a_bundle_is_made_again_only_when_one_of_its_files_changed() {
        let (_guard, dir) = temp("stamp");
        let user = _guard.join("user-ca.pem");
        fs::write(&user, "# first\n").unwrap();
        let bundle = write_bundle(&dir, std::slice::from_ref(&user)).unwrap();
        // Written behind its stamp's back: an unchanged source keeps it.
        fs::write(&bundle, "kept\n").unwrap();
        assert_eq!(write_bundle(&dir, std::slice::from_ref(&user)).unwrap(), bundle);
        assert!(fs::read_to_string(&bundle).unwrap() == "kept\n", "made again");
        fs::write(&user, "# second, longer\n").unwrap();
        assert_eq!(write_bundle(&dir, std::slice::from_ref(&user)).unwrap(), bundle);
        let text = fs::read_to_string(&bundle).unwrap();
        assert!(text.contains("# second, longer") && !text.contains("# first"), "{text}");
    }

    #[test]
    fn the_truststore_holds_every_certificate_of_the_bundle() {
        let (_guard, dir) = temp("truststore");
        let bundle = write_bundle(&dir, &[]).unwrap();
        let store = fs::read(truststore_of(&bundle)).unwrap();
        let count = CertificateDer::pem_slice_iter(&fs::read(&bundle).unwrap()).count();
        assert!(count >= 1);
        assert_eq!(&store[..8], &[0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2]);
        assert_eq!(u32::from_be_bytes(store[8..12].try_into().unwrap()) as usize, count);
        // The last entry is our CA, and the store ends with its 20-byte seal.
        let ours = CertificateDer::from_pem_slice(load_or_create(&dir).unwrap().0.as_bytes()).unwrap();
        assert_eq!(&store[store.len() - 20 - ours.len()..store.len() - 20], ours.as_ref());
    }

    #[test]
    fn tls_libraries_are_told_by_their_file_names() {
        assert!(verifies_peers(b"/lib/x86_64-linux-gnu/libssl.so.3"));
        assert!(verifies_peers(b"/x/site-packages/pycurl.libs/libssl-8b66dd34.so.3"));
        assert!(verifies_peers(b"libgnutls.so.30"));
        assert!(verifies_peers(b"/usr/lib/jvm/java-17/lib/server/libjvm.so"));
        assert!(!verifies_peers(b"/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(!verifies_peers(b"/usr/lib/libselinux.so.1"));
    }

    #[test]
    fn only_trust_files_are_redirected() {
        assert_eq!(redirect(b"/etc/ssl/certs/ca-certificates.crt"), Some(Redirect::Bundle));
        assert_eq!(redirect(b"/usr/lib/python3/dist-packages/certifi/cacert.pem"), Some(Redirect::Bundle));
        assert_eq!(redirect(b"/root/venv/lib/python3.11/site-packages/certifi/cacert.pem"), Some(Redirect::Bundle));
        assert_eq!(redirect(b"/usr/lib/jvm/java-17-openjdk-amd64/lib/security/cacerts"), Some(Redirect::Truststore));
        assert_eq!(redirect(b"/etc/ssl/certs/java/cacerts"), Some(Redirect::Truststore));
        for other in
            [&b"/etc/passwd"[..], b"/etc/ssl/certs/ca-certificates.crt.new", b"relative/cacerts", b"/home/me/ca-certificates.crt", b""]
        {
            assert_eq!(redirect(other), None, "{}", String::from_utf8_lossy(other));
        }
    }
}

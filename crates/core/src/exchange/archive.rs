//! The file around the resources: age encryption outside, and inside either one FHIR Bundle
//! (one patient) or a tar of FHIR Bulk Data NDJSON files with their manifest.
//!
//! Plaintext exists only in memory: the writer encrypts as it goes, the reader decrypts into
//! memory and checks the whole file before anything is imported.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use age::secrecy::SecretString;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::fhir::{invalid, RESOURCE_TYPES};
use crate::CoreError;

/// Passphrase exports use scrypt with N = 2^18, the `age` tool's own default.
const SCRYPT_LOG_N: u8 = 18;
/// A decryptor accepts at most this work factor, so a hostile file cannot ask for hours.
const SCRYPT_MAX_LOG_N: u8 = 20;
/// An NDJSON file is cut into parts of about this size, which bounds the memory an export
/// of the whole clinic holds.
const PART_BYTES: usize = 8 << 20;

/// What an import reads at most, checked before anything is read into memory: a file that
/// claims more is refused with these numbers in words (the README lists them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The whole decrypted file.
    pub plaintext: usize,
    /// One file inside a Bulk Data archive, or a single Bundle.
    pub entry: u64,
    /// Resources in all.
    pub resources: usize,
}

impl Limits {
    /// 2 GiB decrypted, 256 MiB per file (Chartroom's own parts are 8 MiB), two million
    /// resources: a whole clinic of about 20,000 patients with ten years of history.
    pub(crate) const IMPORT: Limits = Limits {
        plaintext: 2 << 30,
        entry: 256 << 20,
        resources: 2_000_000,
    };
}

fn too_big(what: &str, limit: u64) -> CoreError {
    CoreError::InvalidFile(format!(
        "{what} is larger than Chartroom imports ({}). Nothing was imported.",
        bytes_in_words(limit)
    ))
}

pub(crate) fn bytes_in_words(n: u64) -> String {
    if n >= 1 << 30 && n % (1 << 30) == 0 {
        format!("{} GiB", n >> 30)
    } else if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// Reads `reader` to its end into memory that is wiped when dropped, also each time it
/// grows (a growing Vec would leave copies of the plaintext behind in freed memory), and
/// refuses past `limit` bytes.
pub(crate) fn read_wiped(
    mut reader: impl Read,
    limit: usize,
) -> std::io::Result<Result<zeroize::Zeroizing<Vec<u8>>, usize>> {
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(1 << 16));
    let mut chunk = zeroize::Zeroizing::new([0u8; 1 << 16]);
    loop {
        let n = match reader.read(chunk.as_mut()) {
            Ok(0) => return Ok(Ok(buf)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.len() + n > limit {
            return Ok(Err(limit));
        }
        if buf.len() + n > buf.capacity() {
            let mut bigger = zeroize::Zeroizing::new(Vec::with_capacity(
                (buf.capacity() * 2).max(buf.len() + n).min(limit),
            ));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Where an export is encrypted to.
#[derive(Debug)]
pub enum Destination {
    /// X25519 recipients (`age1…`, as `age-keygen` prints them).
    Recipients(Vec<String>),
    /// A passphrase, to be passed on to the recipient separately.
    Passphrase(SecretString),
}

/// A key as the accounting of disclosures records it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct KeyInfo {
    /// `age-x25519` or `passphrase`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For a recipient, the recipient itself (public, as the receiver gave it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub recipient: Option<String>,
    /// SHA-256 of the recipient, first 16 bytes in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub fingerprint: Option<String>,
}

/// Parses the destination into an age encryptor and the key facts to record.
pub(crate) fn encryptor(dest: &Destination) -> Result<(age::Encryptor, Vec<KeyInfo>), CoreError> {
    match dest {
        Destination::Recipients(list) => {
            if list.is_empty() {
                return Err(CoreError::InvalidInput(
                    "Name at least one recipient (an age public key, age1…) or use a passphrase."
                        .into(),
                ));
            }
            let mut recipients = Vec::new();
            let mut keys = Vec::new();
            for text in list {
                let text = text.trim();
                let r: age::x25519::Recipient = text.parse().map_err(|_| {
                    CoreError::InvalidInput(format!(
                        "\"{}\" is not an age recipient. A recipient is the public key `age-keygen` prints, starting with age1.",
                        text.chars().take(70).collect::<String>()
                    ))
                })?;
                let canonical = r.to_string();
                let digest = Sha256::digest(canonical.as_bytes());
                keys.push(KeyInfo {
                    kind: "age-x25519".into(),
                    fingerprint: Some(format!("SHA256:{}", hex::encode(&digest[..16]))),
                    recipient: Some(canonical),
                });
                recipients.push(r);
            }
            let enc = age::Encryptor::with_recipients(
                recipients.iter().map(|r| r as &dyn age::Recipient),
            )
            .map_err(|e| CoreError::InvalidInput(format!("The recipients cannot be used: {e}")))?;
            Ok((enc, keys))
        }
        Destination::Passphrase(p) => {
            use age::secrecy::ExposeSecret;
            if p.expose_secret().chars().count() < 10 {
                return Err(CoreError::InvalidInput(
                    "An export passphrase needs at least 10 characters; a few random words are best."
                        .into(),
                ));
            }
            let mut r = age::scrypt::Recipient::new(p.clone());
            r.set_work_factor(SCRYPT_LOG_N);
            let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
                .map_err(|e| {
                CoreError::InvalidInput(format!("The passphrase cannot be used: {e}"))
            })?;
            Ok((
                enc,
                vec![KeyInfo {
                    kind: "passphrase".into(),
                    recipient: None,
                    fingerprint: None,
                }],
            ))
        }
    }
}

/// Counts and hashes what passes through: the encrypted file's size and SHA-256.
pub(crate) struct Tally<W: Write> {
    inner: W,
    pub bytes: u64,
    hash: Sha256,
}

impl<W: Write> Tally<W> {
    pub fn new(inner: W) -> Self {
        Tally {
            inner,
            bytes: 0,
            hash: Sha256::new(),
        }
    }

    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hash.finalize()))
    }
}

impl<W: Write> Write for Tally<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// FHIR Bulk Data NDJSON, one file (or several parts) per resource type, in a tar.
pub(crate) struct Bulk<W: Write> {
    tar: tar::Builder<W>,
    buffers: BTreeMap<String, (Vec<u8>, u64, u32)>,
    outputs: Vec<Value>,
    mtime: u64,
    /// The base the manifest's file URLs are absolute under (none: bare file names).
    base: Option<String>,
}

impl<W: Write> Bulk<W> {
    /// Names the files in the manifest by absolute URLs under `base`, as Bulk Data asks.
    pub fn with_base(mut self, base: String) -> Self {
        self.base = Some(base);
        self
    }

    pub fn new(inner: W, mtime: u64) -> Self {
        let mut tar = tar::Builder::new(inner);
        tar.mode(tar::HeaderMode::Deterministic);
        Bulk {
            tar,
            buffers: BTreeMap::new(),
            outputs: Vec::new(),
            base: None,
            mtime,
        }
    }

    pub fn push(&mut self, resource: &Value) -> Result<(), CoreError> {
        let kind = resource["resourceType"]
            .as_str()
            .unwrap_or("Unknown")
            .to_owned();
        let entry = self
            .buffers
            .entry(kind.clone())
            .or_insert((Vec::new(), 0, 1));
        serde_json::to_writer(&mut entry.0, resource)
            .map_err(|e| CoreError::InvalidInput(e.to_string()))?;
        entry.0.push(b'\n');
        entry.1 += 1;
        if entry.0.len() >= PART_BYTES {
            self.flush(&kind)?;
        }
        Ok(())
    }

    fn file(&mut self, name: &str, data: &[u8]) -> Result<(), CoreError> {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar.append_data(&mut header, name, data)?;
        Ok(())
    }

    fn flush(&mut self, kind: &str) -> Result<(), CoreError> {
        let Some((buf, count, part)) = self.buffers.get_mut(kind) else {
            return Ok(());
        };
        if *count == 0 {
            return Ok(());
        }
        let name = if *part == 1 {
            format!("{kind}.ndjson")
        } else {
            format!("{kind}.{part}.ndjson")
        };
        let data = std::mem::take(buf);
        let n = std::mem::take(count);
        *part += 1;
        self.file(&name, &data)?;
        let url = match &self.base {
            Some(base) => format!("{base}/{name}"),
            None => name.clone(),
        };
        self.outputs
            .push(json!({"type": kind, "url": url, "count": n}));
        Ok(())
    }

    /// Writes the last parts and the manifest; returns the inner writer.
    pub fn finish(mut self, mut manifest: Value) -> Result<W, CoreError> {
        for kind in RESOURCE_TYPES {
            self.flush(kind)?;
        }
        manifest["output"] = Value::Array(std::mem::take(&mut self.outputs));
        let data = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| CoreError::InvalidInput(e.to_string()))?;
        self.file("manifest.json", &data)?;
        Ok(self.tar.into_inner()?)
    }
}

/// How the reader is told to open a file.
#[derive(Debug)]
pub enum ImportKey {
    /// The contents of an age identity file (as `age-keygen` writes it).
    Identities(SecretString),
    Passphrase(SecretString),
    /// No key: the file must be plain FHIR (another system's, not encrypted).
    NotGiven,
}

/// The bytes of a file to import: decrypted when it is an age file, read as it is when it
/// is plain (FHIR from another system), within the import's limits either way.
pub(crate) fn open(
    input: impl Read,
    key: &ImportKey,
) -> Result<zeroize::Zeroizing<Vec<u8>>, CoreError> {
    use std::io::BufRead;
    let mut input = std::io::BufReader::new(input);
    let head = input.fill_buf()?;
    let encrypted = head.starts_with(b"age-encryption.org/")
        || head.starts_with(b"-----BEGIN AGE ENCRYPTED FILE");
    if encrypted {
        if matches!(key, ImportKey::NotGiven) {
            return Err(CoreError::InvalidInput(
                "This file is encrypted: give the key it was encrypted to (--identity KEYFILE) or its passphrase (--passphrase)."
                    .into(),
            ));
        }
        return decrypt(input, key);
    }
    match read_wiped(input, Limits::IMPORT.plaintext)? {
        Ok(plain) => Ok(plain),
        Err(limit) => Err(too_big("The file", limit as u64)),
    }
}

/// Decrypts a whole export into memory. Every failure says which of the usual causes it is.
pub(crate) fn decrypt(
    input: impl Read,
    key: &ImportKey,
) -> Result<zeroize::Zeroizing<Vec<u8>>, CoreError> {
    decrypt_within(input, key, Limits::IMPORT)
}

pub(crate) fn decrypt_within(
    input: impl Read,
    key: &ImportKey,
    limits: Limits,
) -> Result<zeroize::Zeroizing<Vec<u8>>, CoreError> {
    use age::secrecy::ExposeSecret;
    let not_age = || {
        CoreError::InvalidFile(
            "This file is not an encrypted Chartroom export (age format). Nothing was imported."
                .into(),
        )
    };
    let decryptor = age::Decryptor::new(std::io::BufReader::new(input)).map_err(|e| match e {
        age::DecryptError::Io(io)
            if !matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            CoreError::from(io)
        }
        _ => not_age(),
    })?;
    let wrong = |e: age::DecryptError, what: &str| {
        match e {
        age::DecryptError::InvalidMac => CoreError::Integrity(
            "The export's header has been altered since it was made. Nothing was imported."
                .into(),
        ),
        age::DecryptError::ExcessiveWork { .. } => CoreError::InvalidFile(
            "This export asks for more passphrase work than Chartroom allows. Nothing was imported."
                .into(),
        ),
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => not_age(),
        _ => CoreError::WrongKey(what.to_owned()),
    }
    };
    let reader = match key {
        ImportKey::Passphrase(p) => {
            if !decryptor.is_scrypt() {
                return Err(CoreError::WrongKey(
                    "This export was encrypted to a key, not a passphrase: give the identity file that holds the key."
                        .into(),
                ));
            }
            let mut id = age::scrypt::Identity::new(p.clone());
            id.set_max_work_factor(SCRYPT_MAX_LOG_N);
            decryptor
                .decrypt(std::iter::once(&id as &dyn age::Identity))
                .map_err(|e| {
                    wrong(
                        e,
                        "The passphrase does not open this export. Nothing was imported.",
                    )
                })?
        }
        ImportKey::NotGiven => {
            return Err(CoreError::InvalidInput(
                "This file is encrypted: give the key it was encrypted to (--identity KEYFILE) or its passphrase (--passphrase)."
                    .into(),
            ))
        }
        ImportKey::Identities(text) => {
            if decryptor.is_scrypt() {
                return Err(CoreError::WrongKey(
                    "This export is protected by a passphrase, not a key: import it with the passphrase."
                        .into(),
                ));
            }
            let file = age::IdentityFile::from_buffer(text.expose_secret().as_bytes())
                .map_err(|_| {
                    CoreError::InvalidInput(
                        "The identity file is not an age identity file (AGE-SECRET-KEY-1…, as age-keygen writes it)."
                            .into(),
                    )
                })?;
            let identities = file.into_identities().map_err(|_| {
                CoreError::InvalidInput(
                    "The identity file holds a key Chartroom cannot use.".into(),
                )
            })?;
            if identities.is_empty() {
                return Err(CoreError::InvalidInput(
                    "The identity file holds no key (AGE-SECRET-KEY-1…).".into(),
                ));
            }
            decryptor
                .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
                .map_err(|e| {
                    wrong(
                        e,
                        "None of the keys in the identity file opens this export: it was encrypted to someone else. Nothing was imported.",
                    )
                })?
        }
    };
    match read_wiped(reader, limits.plaintext) {
        Ok(Ok(plain)) => Ok(plain),
        Ok(Err(limit)) => Err(too_big("The decrypted export", limit as u64)),
        Err(e)
            if e.kind() == std::io::ErrorKind::InvalidData
                || e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Err(CoreError::Integrity(
                "The export is damaged: it ends early or was altered after it was made. Nothing was imported."
                    .into(),
            ))
        }
        Err(e) => Err(CoreError::from(e)),
    }
}

/// What a decrypted export holds: its resources, and the sending vault's signature if it
/// carries one (Bundle.signature, or the Bulk manifest's Chartroom extension).
pub(crate) struct Contents {
    /// Each resource's JSON text, in file order. A reader parses one at a time, so an
    /// import never holds the whole file as parsed JSON (which takes many times the text).
    pub resources: Vec<String>,
    pub signature: Option<Value>,
}

/// A resource's `meta.source`, read without building the rest of it.
#[derive(serde::Deserialize)]
pub(crate) struct Head<'a> {
    #[serde(borrow, default)]
    pub meta: Option<MetaHead<'a>>,
}

#[derive(serde::Deserialize)]
pub(crate) struct MetaHead<'a> {
    #[serde(borrow, default)]
    pub source: Option<std::borrow::Cow<'a, str>>,
}

/// Refuses JSON with far more objects and lists than records have for their size (FHIR
/// runs about 8 per KiB; this allows 64, and 1,000 more for a small one): parsed, each
/// costs tens of bytes, so a file of tiny nested values (`[[],[],…]`) would take tens of
/// times its size in memory. Counted in one pass over the bytes, before anything is parsed.
pub(crate) fn check_density(label: &str, json: &[u8]) -> Result<(), CoreError> {
    let (mut n, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'{' || b == b'[' {
            n += 1;
        }
    }
    if n > 1000 + json.len() / 16 {
        return Err(invalid(
            label,
            "it holds far more JSON objects and lists than records do for their size, which Chartroom does not read",
        ));
    }
    Ok(())
}

/// A resource's type alone, read without building the rest of it.
#[derive(serde::Deserialize)]
struct KindHead<'a> {
    #[serde(rename = "resourceType", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

/// A resource's JSON text, parsed.
pub(crate) fn value_of(text: &str) -> Result<Value, CoreError> {
    serde_json::from_str(text)
        .map_err(|e| invalid("the file", format!("a resource is not valid JSON ({e})")))
}

/// The resources of a decrypted export, Bundle or Bulk archive alike.
#[cfg(test)]
pub(crate) fn resources(plain: &[u8]) -> Result<Vec<Value>, CoreError> {
    contents(plain)?
        .resources
        .iter()
        .map(|t| value_of(t))
        .collect()
}

#[cfg(test)]
pub(crate) fn resources_within(plain: &[u8], limits: Limits) -> Result<Vec<Value>, CoreError> {
    contents_within(plain, limits)?
        .resources
        .iter()
        .map(|t| value_of(t))
        .collect()
}

pub(crate) fn contents(plain: &[u8]) -> Result<Contents, CoreError> {
    contents_within(plain, Limits::IMPORT)
}

pub(crate) fn contents_within(plain: &[u8], limits: Limits) -> Result<Contents, CoreError> {
    let too_many = || {
        CoreError::InvalidFile(format!(
            "The export holds more than {} resources, more than Chartroom imports at once. Nothing was imported.",
            limits.resources
        ))
    };
    let first = plain.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        if plain.len() as u64 > limits.entry {
            return Err(too_big("The Bundle", limits.entry));
        }
        check_density("the Bundle", plain)?;
        let bundle: Value = serde_json::from_slice(plain)
            .map_err(|e| invalid("the Bundle", format!("not valid JSON ({e})")))?;
        if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            return Err(invalid("the file", "its JSON is not a FHIR Bundle"));
        }
        let entries = bundle
            .get("entry")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("the Bundle", "it has no entries"))?;
        if entries.len() > limits.resources {
            return Err(too_many());
        }
        let resources = entries
            .iter()
            .map(|e| {
                e.get("resource")
                    .map(Value::to_string)
                    .ok_or_else(|| invalid("the Bundle", "an entry has no resource"))
            })
            .collect::<Result<_, _>>()?;
        return Ok(Contents {
            resources,
            signature: bundle.get("signature").cloned(),
        });
    }
    let mut archive = tar::Archive::new(plain);
    let mut out = Vec::new();
    let mut manifest = None;
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    let entries = archive.entries().map_err(|_| {
        invalid(
            "the file",
            "it is neither a FHIR Bundle nor a Bulk Data archive",
        )
    })?;
    for entry in entries {
        let mut entry = entry
            .map_err(|_| invalid("the archive", "it is damaged (a tar entry cannot be read)"))?;
        // Names are only compared, never used as paths.
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        // Plain files only: a sparse entry (which can claim gigabytes from a few bytes), a
        // link, a directory or a device is refused before a byte of it is read.
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Regular {
            return Err(invalid(
                &clip_name(&name),
                format!(
                    "a {} in the archive, where only plain files belong",
                    entry_kind_in_words(kind)
                ),
            ));
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size > limits.entry || entry.size() > limits.entry {
            return Err(too_big(
                &format!("The file {}", clip_name(&name)),
                limits.entry,
            ));
        }
        let mut bytes =
            Vec::with_capacity(usize::try_from(size.min(plain.len() as u64)).unwrap_or(0));
        (&mut entry)
            .take(limits.entry + 1)
            .read_to_end(&mut bytes)
            .map_err(|_| invalid("the archive", "it is damaged (a tar entry cannot be read)"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| invalid(&clip_name(&name), "it is not UTF-8 text"))?;
        if name == "manifest.json" {
            manifest = Some(
                serde_json::from_str::<Value>(&text)
                    .map_err(|e| invalid("manifest.json", format!("not valid JSON ({e})")))?,
            );
            continue;
        }
        let kind = ndjson_type(&name).ok_or_else(|| {
            invalid(
                &clip_name(&name),
                "an unexpected file in a Bulk Data archive",
            )
        })?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            check_density(
                &format!("{} line {}", clip_name(&name), i + 1),
                line.as_bytes(),
            )?;
            let head: KindHead<'_> = serde_json::from_str(line).map_err(|e| {
                invalid(
                    &format!("{} line {}", clip_name(&name), i + 1),
                    format!("not valid JSON ({e})"),
                )
            })?;
            if head.kind.as_deref() != Some(kind) {
                return Err(invalid(
                    &format!("{} line {}", clip_name(&name), i + 1),
                    format!("not a {kind}"),
                ));
            }
            if out.len() == limits.resources {
                return Err(too_many());
            }
            out.push(line.to_owned());
        }
        *counted.entry(name).or_default() +=
            text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    }
    let manifest = manifest.ok_or_else(|| invalid("the archive", "manifest.json is missing"))?;
    let listed = manifest
        .get("output")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("manifest.json", "output is missing"))?;
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for o in listed {
        // The file's name: the last part of its (absolute) URL.
        let url = o.get("url").and_then(Value::as_str).unwrap_or_default();
        let url = url.rsplit('/').next().unwrap_or(url);
        let n = o.get("count").and_then(Value::as_u64).unwrap_or_default();
        expected.insert(url.to_owned(), n);
    }
    if expected != counted {
        return Err(invalid(
            "manifest.json",
            "the files and counts it lists are not the files in the archive (a file is missing or was cut short)",
        ));
    }
    let signature = manifest.pointer("/extension/chartroom/signature").cloned();
    Ok(Contents {
        resources: out,
        signature,
    })
}

fn entry_kind_in_words(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::GNUSparse => "sparse file",
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Directory => "folder",
        tar::EntryType::Char | tar::EntryType::Block => "device",
        tar::EntryType::Fifo => "pipe",
        _ => "special entry",
    }
}

fn clip_name(name: &str) -> String {
    name.chars().take(60).collect()
}

/// `Observation.ndjson` or `Observation.2.ndjson` → `Observation`, for the known types only.
fn ndjson_type(name: &str) -> Option<&'static str> {
    let stem = name.strip_suffix(".ndjson")?;
    let (kind, part) = match stem.split_once('.') {
        Some((k, p)) => (k, Some(p)),
        None => (stem, None),
    };
    if let Some(p) = part {
        p.parse::<u32>().ok().filter(|n| *n >= 2)?;
    }
    RESOURCE_TYPES.into_iter().find(|t| *t == kind)
}

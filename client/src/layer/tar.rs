//! Tar headers as the layer writer emits them: POSIX ustar blocks, preceded by a PAX extended
//! header when a value does not fit a ustar field (long names and link targets, large ids,
//! sizes and times) or when the entry carries extended attributes (`SCHILY.xattr.NAME`, the
//! records docker, containerd and GNU tar use). The reader twin is `unpack`'s tar reader.

pub(crate) const BLOCK: usize = 512;

pub(crate) const TYPE_FILE: u8 = b'0';
pub(crate) const TYPE_HARDLINK: u8 = b'1';
pub(crate) const TYPE_SYMLINK: u8 = b'2';
pub(crate) const TYPE_CHAR: u8 = b'3';
pub(crate) const TYPE_BLOCK: u8 = b'4';
pub(crate) const TYPE_DIR: u8 = b'5';
pub(crate) const TYPE_FIFO: u8 = b'6';
const TYPE_PAX: u8 = b'x';

/// One entry's header fields.
pub(crate) struct Header<'a> {
    /// The name as it goes into the archive: relative, a directory's ending in `/`.
    pub name: &'a [u8],
    pub link: &'a [u8],
    pub typeflag: u8,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    pub devmajor: u32,
    pub devminor: u32,
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// Appends the header block(s) of one entry to `out`: a PAX header with its records when
/// needed, then the ustar block.
pub(crate) fn encode(h: &Header<'_>, out: &mut Vec<u8>) {
    let mut pax: Vec<u8> = Vec::new();
    let mut block = [0u8; BLOCK];

    match split_name(h.name) {
        Some((prefix, name)) => {
            block[345..345 + prefix.len()].copy_from_slice(prefix);
            block[..name.len()].copy_from_slice(name);
        }
        None => {
            record(&mut pax, b"path", h.name);
            let cut = h.name.len().min(100);
            block[..cut].copy_from_slice(&h.name[..cut]);
        }
    }
    if h.link.len() <= 100 {
        block[157..157 + h.link.len()].copy_from_slice(h.link);
    } else {
        record(&mut pax, b"linkpath", h.link);
        block[157..257].copy_from_slice(&h.link[..100]);
    }
    octal(&mut block[100..108], u64::from(h.mode & 0o7777));
    for (field, value, key) in [
        (108..116, h.uid, &b"uid"[..]),
        (116..124, h.gid, b"gid"),
        (124..136, h.size, b"size"),
    ] {
        if !octal(&mut block[field], value) {
            record(&mut pax, key, value.to_string().as_bytes());
        }
    }
    let mtime_fits = u64::try_from(h.mtime).is_ok_and(|t| octal(&mut block[136..148], t));
    if !mtime_fits {
        record(&mut pax, b"mtime", h.mtime.to_string().as_bytes());
    }
    block[156] = h.typeflag;
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    if matches!(h.typeflag, TYPE_CHAR | TYPE_BLOCK) {
        octal(&mut block[329..337], u64::from(h.devmajor));
        octal(&mut block[337..345], u64::from(h.devminor));
    }
    for (name, value) in h.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        record(&mut pax, &key, value);
    }
    checksum(&mut block);

    if !pax.is_empty() {
        let mut head = [0u8; BLOCK];
        head[..14].copy_from_slice(b"././@PaxHeader");
        octal(&mut head[100..108], 0o644);
        octal(&mut head[108..116], 0);
        octal(&mut head[116..124], 0);
        octal(&mut head[124..136], pax.len() as u64);
        octal(&mut head[136..148], 0);
        head[156] = TYPE_PAX;
        head[257..263].copy_from_slice(b"ustar\0");
        head[263..265].copy_from_slice(b"00");
        checksum(&mut head);
        out.extend_from_slice(&head);
        out.extend_from_slice(&pax);
        out.resize(out.len() + padding(pax.len() as u64), 0);
    }
    out.extend_from_slice(&block);
}

/// Zero bytes that follow `len` bytes of data to fill the last block.
pub(crate) fn padding(len: u64) -> usize {
    ((BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64) as usize
}

/// ustar keeps a name of up to 100 bytes, or one split at a `/` into a prefix of up to 155
/// and a rest of up to 100. `None` when neither fits.
fn split_name(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((&[], name));
    }
    // Trailing `/` of a directory stays with the last component.
    let body = name.strip_suffix(b"/").unwrap_or(name);
    (0..body.len().min(156))
        .rev()
        .filter(|&i| body[i] == b'/')
        .map(|i| (&name[..i], &name[i + 1..]))
        .find(|(prefix, rest)| prefix.len() <= 155 && !rest.is_empty() && rest.len() <= 100)
}

/// Writes `value` as zero-padded octal digits and a NUL terminator; false (and the field left
/// zero) when it does not fit.
fn octal(field: &mut [u8], value: u64) -> bool {
    let digits = field.len() - 1;
    if digits < 22 && value >> (3 * digits) != 0 {
        return false;
    }
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
    true
}

fn checksum(block: &mut [u8; BLOCK]) {
    block[148..156].fill(b' ');
    let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(text.as_bytes());
}

/// One PAX record, `LEN KEY=VALUE\n`, where LEN counts the whole record, its own digits too.
fn record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &[u8]) -> Header<'_> {
        Header {
            name,
            link: b"",
            typeflag: TYPE_FILE,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            devmajor: 0,
            devminor: 0,
            xattrs: &[],
        }
    }

    #[test]
    fn names_split_or_go_to_pax() {
        assert_eq!(split_name(b"a/b"), Some((&b""[..], &b"a/b"[..])));
        let long = [vec![b'd'; 120], b"/f".to_vec()].concat();
        assert_eq!(split_name(&long), Some((&long[..120], &b"f"[..])));
        assert_eq!(split_name(&[b'x'; 101]), None);
        let mut out = Vec::new();
        encode(&header(&[b'x'; 300]), &mut out);
        assert_eq!(out.len(), 3 * BLOCK);
        assert_eq!(out[156], TYPE_PAX);
    }

    #[test]
    fn pax_records_count_their_own_length() {
        for n in [0, 1, 5, 6, 7, 90, 95, 96, 97, 1000] {
            let mut out = Vec::new();
            record(&mut out, b"path", &vec![b'a'; n]);
            let text = String::from_utf8(out.clone()).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(
                len.parse::<usize>().unwrap(),
                out.len(),
                "value of {n} bytes"
            );
        }
    }

    #[test]
    fn large_values_go_to_pax() {
        let mut h = header(b"f");
        h.uid = 1 << 30;
        h.size = 10 << 30;
        h.mtime = -5;
        let mut out = Vec::new();
        encode(&h, &mut out);
        let text = String::from_utf8_lossy(&out[BLOCK..2 * BLOCK]);
        assert!(text.contains("uid=1073741824"), "{text}");
        assert!(text.contains("size=10737418240"), "{text}");
        assert!(text.contains("mtime=-5"), "{text}");
    }
}

//! The events journal: what happened to containers, images, volumes and networks, written by
//! the command (or the container's monitor) that did it, and read and followed by `berth
//! events`. There is no daemon to broadcast events, so they go through a file under the root.
//!
//! ```text
//! <root>/events/journal      JSON lines, oldest first, one docker event message each
//! <root>/events/journal.1    the journal before the last rotation
//! <root>/events/lock         flock'd by the writer that rotates
//! ```
//!
//! A line is docker's event message (`docker events --format '{{json .}}'`): `Type`,
//! `Action`, `Actor` (`ID`, `Attributes`), `scope`, `time`, `timeNano`, and for containers and
//! images the older `status`, `id` and `from`. Each record is one `write(2)` of one line on a
//! file opened with `O_APPEND`, so records of concurrent commands never interleave.
//! Bounded: when `journal` passes [`LIMIT`] bytes, the writer that notices renames it to
//! `journal.1` (the older one goes), under the lock; a reader following the old file drains it
//! and moves on to the new one.
//!
//! # API
//!
//! ```text
//! Journal::open(root) -> Journal
//! Journal::record(Event)                 best effort: a failure is logged, never the command's
//! Event::new(Kind, action, actor_id)     .attr(key, value), .from(image) for containers
//! Journal::read(since, until) -> Vec<Event>     what the journal still holds, oldest first
//! Journal::follow() -> Follower          Follower::next(timeout) -> Option<Event>: new events
//! Filter::parse(["type=container", …])    docker's `--filter`; Filter::matches(&Event)
//! ```
//!
//! What writes which event (docker's actions and attributes):
//! - container (`Actor.ID` the container id; attributes `image`, `name` and the labels):
//!   `create`, `start`, `die` (`exitCode`; written by the monitor at the exit), `kill`
//!   (`signal`), `stop`, `pause`, `unpause`, `rename` (`oldName`), `destroy`,
//!   `exec_create/exec_start/exec_die: CMD` (`execID`) — the engine writes them;
//!   `health_status: STATUS` when a healthcheck changes it — the supervisor writes it.
//! - image (`Actor.ID` the reference or the image id; attribute `name`): `pull`, `push`,
//!   `tag`, `untag`, `delete`, `load`, `save`, `import` — the image store writes them.
//! - volume (`Actor.ID` the volume's name; `driver`): `create`, `mount` (`container`,
//!   `destination`, `read/write`), `destroy`.
//! - network (`Actor.ID` the network's id; `name`, `type`, `container`): `create`,
//!   `destroy`, `connect`, `disconnect`.
//! - `prune` of containers, networks, volumes, images and the build cache (`builder`): no
//!   actor, `reclaimed` (bytes) — the engine and the image store write them, one per prune.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The size past which the journal is rotated; with the one rotated file, the journal holds
/// at most about twice this (some 20,000 events).
pub const LIMIT: u64 = 2 << 20;

/// What an event is about (docker's `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Container,
    Image,
    Volume,
    Network,
    /// The build cache (its `prune`).
    Builder,
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Image => "image",
            Kind::Volume => "volume",
            Kind::Network => "network",
            Kind::Builder => "builder",
        }
    }
}

/// Who an event happened to (docker's `Actor`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

/// One event: docker's event message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// docker's older fields, kept for containers and images (`status` = `Action`, `id` =
    /// `Actor.ID`, `from` = the container's image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(rename = "Type")]
    pub kind: Kind,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    /// Seconds since the epoch.
    pub time: i64,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

impl Event {
    /// An event of now.
    pub fn new(kind: Kind, action: impl Into<String>, actor_id: impl Into<String>) -> Event {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let time_nano = now.as_nanos() as i64;
        let action = action.into();
        let id: String = actor_id.into();
        let old = matches!(kind, Kind::Container | Kind::Image);
        Event {
            status: old.then(|| action.clone()),
            id: old.then(|| id.clone()),
            from: None,
            kind,
            action,
            actor: Actor {
                id,
                attributes: BTreeMap::new(),
            },
            scope: "local".into(),
            time: time_nano / 1_000_000_000,
            time_nano,
        }
    }

    /// A prune's event, as docker's daemon writes one per kind of thing (no actor; the
    /// bytes it freed).
    pub fn prune(kind: Kind, reclaimed: u64) -> Event {
        Event::new(kind, "prune", "").attr("reclaimed", reclaimed.to_string())
    }

    /// Adds an attribute.
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<String>) -> Event {
        self.actor.attributes.insert(key.into(), value.into());
        self
    }

    /// A container's image (docker's `from`, and the `image` attribute).
    pub fn from(mut self, image: &str) -> Event {
        self.from = Some(image.to_string());
        self.attr("image", image)
    }
}

/// The journal under a root.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    limit: u64,
}

const JOURNAL: &str = "journal";
const ROTATED: &str = "journal.1";

impl Journal {
    pub fn open(root: &Path) -> Journal {
        Journal::with_limit(root, LIMIT)
    }

    /// A journal rotated past `limit` bytes (tests use a small one).
    pub fn with_limit(root: &Path, limit: u64) -> Journal {
        Journal {
            dir: root.join("events"),
            limit,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(JOURNAL)
    }

    /// Appends an event. A journal that cannot be written is logged and otherwise ignored:
    /// the command that did the thing has done it.
    pub fn record(&self, event: Event) {
        if let Err(e) = self.append(&event) {
            tracing::warn!(
                "events journal {}: {e}; event {} {} not recorded",
                self.path().display(),
                event.kind.as_str(),
                event.action
            );
        }
    }

    fn append(&self, event: &Event) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event).expect("an event serialises");
        line.push(b'\n');
        std::fs::create_dir_all(&self.dir)?;
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.path())?;
        f.write_all(&line)?;
        if f.metadata()?.len() > self.limit {
            self.rotate()?;
        }
        Ok(())
    }

    /// Renames a full journal away, once, however many writers notice it at the same time.
    fn rotate(&self) -> std::io::Result<()> {
        let lock = File::create(self.dir.join("lock"))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
        let full = std::fs::metadata(self.path()).is_ok_and(|m| m.len() > self.limit);
        if full {
            std::fs::rename(self.path(), self.dir.join(ROTATED))?;
        }
        Ok(())
    }

    /// Every event the journal holds from `since` until `until` (nanoseconds, inclusive),
    /// oldest first. Lines that are not events (a torn write after a crash) are skipped.
    pub fn read(&self, since: Option<i64>, until: Option<i64>) -> std::io::Result<Vec<Event>> {
        let mut out = Vec::new();
        for name in [ROTATED, JOURNAL] {
            let f = match File::open(self.dir.join(name)) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for line in BufReader::new(f).split(b'\n') {
                let Ok(e) = serde_json::from_slice::<Event>(&line?) else {
                    continue;
                };
                if since.is_none_or(|s| e.time_nano >= s) && until.is_none_or(|u| e.time_nano <= u)
                {
                    out.push(e);
                }
            }
        }
        out.sort_by_key(|e| e.time_nano);
        Ok(out)
    }

    /// Follows the journal from its present end: [`Follower::next`] gives each event written
    /// from now on.
    pub fn follow(&self) -> std::io::Result<Follower> {
        std::fs::create_dir_all(&self.dir)?;
        let mut f = Follower {
            path: self.path(),
            file: None,
            pending: Vec::new(),
        };
        f.reopen(true)?;
        Ok(f)
    }
}

/// Reads the events appended to a journal after it was opened.
pub struct Follower {
    path: PathBuf,
    file: Option<(File, u64)>,
    pending: Vec<u8>,
}

const POLL: Duration = Duration::from_millis(50);

impl Follower {
    /// Opens the journal's current file, at its end or its start.
    fn reopen(&mut self, at_end: bool) -> std::io::Result<()> {
        match File::open(&self.path) {
            Ok(mut f) => {
                let ino = f.metadata()?.ino();
                if at_end {
                    f.seek(SeekFrom::End(0))?;
                }
                self.file = Some((f, ino));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.file = None,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// The next event written, waiting at most `timeout` (`None`: as long as it takes).
    pub fn next(&mut self, timeout: Option<Duration>) -> std::io::Result<Option<Event>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(e) = self.take_line() {
                return Ok(Some(e));
            }
            let mut buf = [0u8; 64 * 1024];
            let n = match &mut self.file {
                Some((f, _)) => f.read(&mut buf)?,
                None => 0,
            };
            if n > 0 {
                self.pending.extend_from_slice(&buf[..n]);
                continue;
            }
            // At the end of what we hold: a rotation gave the journal a new file.
            let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
            let held = self.file.as_ref().map(|(_, ino)| *ino);
            if current.is_some() && current != held {
                self.reopen(false)?;
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    fn take_line(&mut self) -> Option<Event> {
        while let Some(nl) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            if let Ok(e) = serde_json::from_slice(&line[..nl]) {
                return Some(e);
            }
        }
        None
    }
}

/// docker's `events --filter`: values of one key OR, different keys AND.
///
/// Keys: `container` (id, id prefix or name), `image` (an image event's id or name, a
/// container event's image), `event` (the action; `exec_start` matches `exec_start: CMD`),
/// `type`, `label` (`key` or `key=value` among the attributes), `volume`, `network` (id, id
/// prefix or name), `scope`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    keys: BTreeMap<String, Vec<String>>,
}

const FILTER_KEYS: [&str; 8] = [
    "container",
    "image",
    "event",
    "type",
    "label",
    "volume",
    "network",
    "scope",
];

impl Filter {
    /// Parses `key=value` filters; an unknown key or a bad type is an error in docker's words.
    pub fn parse<S: AsRef<str>>(filters: &[S]) -> Result<Filter, String> {
        let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in filters {
            let f = f.as_ref();
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| format!("bad format of filter (expected name=value): {f}"))?;
            let k = k.trim().to_ascii_lowercase();
            if !FILTER_KEYS.contains(&k.as_str()) {
                return Err(format!("invalid filter '{k}'"));
            }
            if k == "type"
                && ![
                    "container",
                    "image",
                    "volume",
                    "network",
                    "builder",
                    "daemon",
                    "plugin",
                    "service",
                    "node",
                    "secret",
                    "config",
                ]
                .contains(&v)
            {
                return Err(format!("invalid filter 'type={v}'"));
            }
            keys.entry(k).or_default().push(v.to_string());
        }
        Ok(Filter { keys })
    }

    /// Whether an event passes every key.
    pub fn matches(&self, e: &Event) -> bool {
        let attr = |k: &str| e.actor.attributes.get(k).map(String::as_str);
        self.keys.iter().all(|(k, values)| {
            let any = |f: &dyn Fn(&str) -> bool| values.iter().any(|v| f(v));
            match k.as_str() {
                "type" => any(&|v| v == e.kind.as_str()),
                "scope" => any(&|v| v == e.scope),
                "event" => {
                    let base = e.action.split(':').next().unwrap_or("");
                    any(&|v| v == e.action || v == base)
                }
                "label" => any(&|v| match v.split_once('=') {
                    Some((k, want)) => attr(k) == Some(want),
                    None => attr(v).is_some(),
                }),
                "container" => {
                    e.kind == Kind::Container
                        && any(&|v| {
                            attr("name") == Some(v) || (!v.is_empty() && e.actor.id.starts_with(v))
                        })
                }
                "volume" => e.kind == Kind::Volume && any(&|v| e.actor.id == v),
                "network" => {
                    e.kind == Kind::Network
                        && any(&|v| {
                            attr("name") == Some(v) || (!v.is_empty() && e.actor.id.starts_with(v))
                        })
                }
                "image" => {
                    let names: Vec<&str> = match e.kind {
                        Kind::Image => [Some(e.actor.id.as_str()), attr("name")]
                            .into_iter()
                            .flatten()
                            .collect(),
                        Kind::Container => attr("image").into_iter().collect(),
                        _ => vec![],
                    };
                    any(&|v| names.iter().any(|n| same_image(n, v)))
                }
                _ => false,
            }
        })
    }
}

/// An image filter's value against an event's image: equal, or equal but for the tag
/// `:latest`, or an id prefix.
fn same_image(name: &str, wanted: &str) -> bool {
    let bare = |s: &str| s.strip_suffix(":latest").unwrap_or(s).to_string();
    name == wanted
        || bare(name) == bare(wanted)
        || (name.starts_with("sha256:")
            && wanted.len() >= 4
            && (name.starts_with(wanted) || name[7..].starts_with(wanted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::with_limit(dir.path(), 4096);
        let mut follower = j.follow().unwrap();
        let mut followed = Vec::new();
        for i in 0..200 {
            j.record(Event::new(Kind::Container, "start", format!("c{i}")).from("busybox"));
            // A follower that keeps up sees every event, across the rotations.
            followed.push(
                follower
                    .next(Some(Duration::from_secs(5)))
                    .unwrap()
                    .unwrap(),
            );
        }
        for (i, e) in followed.iter().enumerate() {
            assert_eq!(e.actor.id, format!("c{i}"));
            assert_eq!(e.actor.attributes["image"], "busybox");
            assert_eq!(e.status.as_deref(), Some("start"));
        }
        let quiet = follower.next(Some(Duration::from_millis(100))).unwrap();
        assert!(quiet.is_none());
        // Bounded: the journal and the rotated file hold at most two limits' worth.
        let size =
            |n: &str| std::fs::metadata(dir.path().join("events").join(n)).map_or(0, |m| m.len());
        assert!(size(JOURNAL) <= 4096 + 512 && size(ROTATED) <= 4096 + 512);
        let kept = j.read(None, None).unwrap();
        assert!(!kept.is_empty() && kept.len() < 200);
        assert_eq!(kept.last().unwrap().actor.id, "c199");
        assert!(kept.windows(2).all(|w| w[0].time_nano <= w[1].time_nano));
        // A window of time.
        let (from, to) = (kept[3].time_nano, kept[5].time_nano);
        let window = j.read(Some(from), Some(to)).unwrap();
        assert_eq!(window.first().unwrap().actor.id, kept[3].actor.id);
        assert_eq!(window.last().unwrap().actor.id, kept[5].actor.id);
    }

    #[test]
    fn docker_json_shape() {
        let e = Event::new(Kind::Volume, "create", "data").attr("driver", "local");
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["Type"], "volume");
        assert_eq!(v["Actor"]["Attributes"]["driver"], "local");
        assert!(v.get("status").is_none(), "volumes have no legacy fields");
        assert_eq!(v["scope"], "local");
        assert_eq!(
            v["time"].as_i64().unwrap(),
            v["timeNano"].as_i64().unwrap() / 1_000_000_000
        );
    }

    #[test]
    fn filters_as_dockers() {
        let c = Event::new(Kind::Container, "exec_start: sh -c true", "abcdef0123")
            .from("busybox")
            .attr("name", "web")
            .attr("team", "a");
        let i = Event::new(Kind::Image, "tag", "sha256:1234abcd").attr("name", "busybox:two");
        let v = Event::new(Kind::Volume, "create", "data").attr("driver", "local");
        let f = |fs: &[&str]| Filter::parse(fs).unwrap();
        let pass = |fs: &[&str], e: &Event| f(fs).matches(e);
        assert!(pass(&[], &c));
        assert!(pass(&["container=web"], &c) && pass(&["container=abcd"], &c));
        assert!(!pass(&["container=db"], &c) && !pass(&["container=web"], &v));
        assert!(pass(&["event=exec_start"], &c) && pass(&["event=exec_start: sh -c true"], &c));
        assert!(!pass(&["event=start"], &c));
        // One key ORs, two keys AND.
        assert!(pass(&["type=volume", "type=container"], &c));
        assert!(!pass(&["type=volume", "container=web"], &c));
        assert!(pass(&["label=team", "label=team=a"], &c) && !pass(&["label=team=b"], &c));
        assert!(pass(&["image=busybox"], &c) && pass(&["image=busybox:latest"], &c));
        assert!(pass(&["image=busybox:two"], &i) && pass(&["image=1234ab"], &i));
        assert!(!pass(&["image=busybox"], &v));
        assert!(pass(&["volume=data"], &v) && !pass(&["volume=other"], &v));
        assert_eq!(
            Filter::parse(&["foo=bar"]).unwrap_err(),
            "invalid filter 'foo'"
        );
        assert_eq!(
            Filter::parse(&["type=box"]).unwrap_err(),
            "invalid filter 'type=box'"
        );
        assert!(Filter::parse(&["container"])
            .unwrap_err()
            .starts_with("bad format"));
    }

    #[test]
    fn a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path());
        j.record(Event::new(Kind::Image, "pull", "busybox:latest"));
        let mut f = OpenOptions::new().append(true).open(j.path()).unwrap();
        f.write_all(b"{\"Type\":\"ima").unwrap();
        drop(f);
        // The torn line swallows the next record; the journal goes on after it.
        j.record(Event::new(Kind::Image, "tag", "sha256:ab"));
        j.record(Event::new(Kind::Image, "untag", "sha256:ab"));
        let got: Vec<String> = j
            .read(None, None)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(got, ["pull", "untag"]);
    }
}

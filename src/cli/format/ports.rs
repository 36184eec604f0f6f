//! A container's ports as docker's CLI writes them: the PORTS column of `ps` (its
//! `formatter.DisplayablePorts`: the ports sorted, consecutive ones merged into ranges, the
//! exposed ones without a host side) and the order of `port`'s lines (`sortorder.NaturalLess`).

use std::cmp::Ordering;

/// One port as docker's API lists a container's (`container.Port`): a published one has its
/// host address and port, an exposed one neither (`ip` empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub private: u16,
    pub ip: String,
    pub public: u16,
    pub protocol: String,
}

/// docker's PORTS column: `53/udp, 0.0.0.0:8000-8002->8000-8002/tcp, [::]:8080->80/tcp`.
///
/// The ports are sorted by container port, host address, host port and protocol; a port
/// published on the same host port joins the run of its address and protocol when it follows
/// the run's last port, and a run it does not follow is written out then; the runs still open
/// follow in the order they were first opened, then the ports published on another host port,
/// in the sorted order. docker's quirks included: a run written out early comes first.
pub fn displayable(mut ports: Vec<Port>) -> String {
    ports.sort_by(|a, b| {
        (a.private, &a.ip, a.public, &a.protocol).cmp(&(b.private, &b.ip, b.public, &b.protocol))
    });
    // (key, first, last) per open run, in the order the keys were first seen.
    let mut runs: Vec<(String, u16, u16)> = vec![];
    let mut result = vec![];
    let mut mapped = vec![];
    for p in &ports {
        let key = if p.ip.is_empty() {
            p.protocol.clone()
        } else if p.public != p.private {
            mapped.push(format!(
                "{}->{}/{}",
                join_host_port(&p.ip, &p.public.to_string()),
                p.private,
                p.protocol
            ));
            continue;
        } else {
            format!("{}/{}", p.ip, p.protocol)
        };
        match runs.iter_mut().find(|r| r.0 == key) {
            None => runs.push((key, p.private, p.private)),
            Some(r) if r.2.checked_add(1) == Some(p.private) => r.2 = p.private,
            Some(r) => {
                result.push(run_text(&r.0, r.1, r.2));
                (r.1, r.2) = (p.private, p.private);
            }
        }
    }
    result.extend(runs.iter().map(|r| run_text(&r.0, r.1, r.2)));
    result.extend(mapped);
    result.join(", ")
}

/// A run of ports: `80/tcp`, `9000-9002/tcp`, `127.0.0.1:8020-8022->8020-8022/tcp`.
fn run_text(key: &str, first: u16, last: u16) -> String {
    let (ip, protocol) = key.rsplit_once('/').unwrap_or(("", key));
    let ports = if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    };
    if ip.is_empty() {
        format!("{ports}/{protocol}")
    } else {
        format!("{}->{ports}/{protocol}", join_host_port(ip, &ports))
    }
}

/// Go's `net.JoinHostPort`: an IPv6 address in brackets.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// docker's `sortorder.NaturalLess` as an ordering: runs of digits compare as numbers (the
/// shorter number, leading zeros aside, is less; then fewer leading zeros), digits come
/// before other bytes, other bytes compare as bytes, and a prefix is less.
pub fn natural(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (da, db) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if da != db {
            return if da {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if !da {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
            continue;
        }
        let zeros = |s: &[u8], mut k: usize| {
            while k < s.len() && s[k] == b'0' {
                k += 1;
            }
            k
        };
        let digits = |s: &[u8], mut k: usize| {
            while k < s.len() && s[k].is_ascii_digit() {
                k += 1;
            }
            k
        };
        let (na, nb) = (zeros(a, i), zeros(b, j));
        let (ea, eb) = (digits(a, na), digits(b, nb));
        let order = (ea - na)
            .cmp(&(eb - nb))
            .then_with(|| a[na..ea].cmp(&b[nb..eb]))
            .then_with(|| na.cmp(&nb));
        if order != Ordering::Equal {
            return order;
        }
        (i, j) = (ea, eb);
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(private: u16, ip: &str, public: u16, protocol: &str) -> Port {
        Port {
            private,
            ip: ip.into(),
            public,
            protocol: protocol.into(),
        }
    }

    /// docker 28's CLI over a private dockerd's containers, column for column.
    #[test]
    fn ports_column_as_docker_writes_it() {
        let both = |p: u16, h: u16, proto: &str| {
            vec![port(p, "0.0.0.0", h, proto), port(p, "::", h, proto)]
        };
        // -p 8000-8002:8000-8002 on an image exposing 80/tcp and 53/udp.
        let mut e1 = vec![port(53, "", 0, "udp"), port(80, "", 0, "tcp")];
        for p in 8000..=8002 {
            e1.extend(both(p, p, "tcp"));
        }
        assert_eq!(
            displayable(e1),
            "53/udp, 80/tcp, 0.0.0.0:8000-8002->8000-8002/tcp, [::]:8000-8002->8000-8002/tcp"
        );
        // -p 8010:8010 -p 8012:8012 -p 8011:8011/udp -p 8011:8011
        let mut e2 = vec![port(53, "", 0, "udp"), port(80, "", 0, "tcp")];
        e2.extend(both(8010, 8010, "tcp"));
        e2.extend(both(8012, 8012, "tcp"));
        e2.extend(both(8011, 8011, "udp"));
        e2.extend(both(8011, 8011, "tcp"));
        assert_eq!(
            displayable(e2),
            "53/udp, 80/tcp, 0.0.0.0:8010-8012->8010-8012/tcp, [::]:8010-8012->8010-8012/tcp, \
             0.0.0.0:8011->8011/udp, [::]:8011->8011/udp"
        );
        // -p 127.0.0.1:8040:8040 -p [fd00:aa::1]:8040-8041:8040-8041 -p 8042:8042/udp
        // --expose 9000-9002
        let mut e4 = vec![port(53, "", 0, "udp"), port(80, "", 0, "tcp")];
        e4.extend((9000..=9002).map(|p| port(p, "", 0, "tcp")));
        e4.push(port(8040, "127.0.0.1", 8040, "tcp"));
        e4.push(port(8040, "fd00:aa::1", 8040, "tcp"));
        e4.push(port(8041, "fd00:aa::1", 8041, "tcp"));
        e4.extend(both(8042, 8042, "udp"));
        assert_eq!(
            displayable(e4),
            "80/tcp, 53/udp, 9000-9002/tcp, 127.0.0.1:8040->8040/tcp, \
             [fd00:aa::1]:8040-8041->8040-8041/tcp, 0.0.0.0:8042->8042/udp, \
             [::]:8042->8042/udp"
        );
        // -p 8050:8051 -p 8051:8050 -p 8052:8052 -p 8053:8053 -p 8060:8060
        let mut e6 = vec![port(53, "", 0, "udp"), port(80, "", 0, "tcp")];
        for (h, p) in [
            (8050, 8051),
            (8051, 8050),
            (8052, 8052),
            (8053, 8053),
            (8060, 8060),
        ] {
            e6.extend(both(p, h, "tcp"));
        }
        assert_eq!(
            displayable(e6),
            "0.0.0.0:8052-8053->8052-8053/tcp, [::]:8052-8053->8052-8053/tcp, 53/udp, 80/tcp, \
             0.0.0.0:8060->8060/tcp, [::]:8060->8060/tcp, 0.0.0.0:8051->8050/tcp, \
             [::]:8051->8050/tcp, 0.0.0.0:8050->8051/tcp, [::]:8050->8051/tcp"
        );
        assert_eq!(displayable(vec![]), "");
    }

    #[test]
    fn natural_order_as_sortorder_has_it() {
        let mut lines = vec![
            "8020/tcp -> 127.0.0.1:8020",
            "81/tcp -> [::]:8031",
            "80/tcp -> [::]:8030",
            "80/tcp -> 0.0.0.0:8030",
            "8011/udp -> 0.0.0.0:8011",
            "8011/tcp -> [::]:8011",
            "8011/tcp -> 0.0.0.0:8011",
            "a10",
            "a9",
            "a09",
            "a",
        ];
        lines.sort_by(|a, b| natural(a, b));
        assert_eq!(
            lines,
            [
                "80/tcp -> 0.0.0.0:8030",
                "80/tcp -> [::]:8030",
                "81/tcp -> [::]:8031",
                "8011/tcp -> 0.0.0.0:8011",
                "8011/tcp -> [::]:8011",
                "8011/udp -> 0.0.0.0:8011",
                "8020/tcp -> 127.0.0.1:8020",
                "a",
                "a9",
                "a09",
                "a10",
            ]
        );
    }
}

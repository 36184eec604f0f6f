//! `berth container inspect`, and docker's container document that `berth inspect` shows too.

use std::collections::BTreeMap;

use anyhow::Result;
use berth_client::engine::{
    endpoint_id, hostname_of, predefined_id, ContainerRecord, EndpointConfig, EndpointState,
    Engine, NetworkMode, NetworkState, PortBinding, Status, DEFAULT_SHM_SIZE,
};
use clap::Args;
use serde_json::{json, Value};

use super::each::ContainersArg;
use crate::cli::format::{InspectFormat, Schema};
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
    #[command(flatten)]
    c: ContainersArg,
}

/// docker's container JSON for `inspect`.
pub fn inspect_value(e: &Engine, rec: &ContainerRecord, size: bool) -> Value {
    let st = e.state(rec);
    let dir = e.dir(&rec.id);
    let argv = rec.config.argv();
    let zero = "0001-01-01T00:00:00Z".to_string();
    let lower: Vec<String> = rec
        .layers
        .iter()
        .rev()
        .map(|c| e.images().snapshot_dir(c).display().to_string())
        .collect();
    let mounts: Vec<Value> = rec
        .mounts
        .iter()
        .map(|m| {
            let mode = [m.read_only.then_some("ro"), m.no_copy.then_some("nocopy")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(",");
            let propagation = match m.kind.as_str() {
                "bind" if m.propagation.is_empty() => "rprivate",
                "bind" => m.propagation.as_str(),
                _ => "",
            };
            let mut v = json!({
                "Type": m.kind,
                "Source": if m.kind == "tmpfs" { json!("") } else { json!(m.source) },
                "Destination": m.destination,
                "Mode": mode,
                "RW": !m.read_only,
                "Propagation": propagation,
            });
            if let Some(n) = &m.name {
                v["Name"] = json!(n);
                v["Driver"] = json!("local");
            }
            v
        })
        .collect();
    let env_map: BTreeMap<String, Value> = rec
        .config
        .volumes
        .iter()
        .map(|v| (v.clone(), json!({})))
        .collect();
    let attached = |stream: &str, default: bool| {
        if rec.config.attach.is_empty() {
            default
        } else {
            rec.config.attach.iter().any(|s| s == stream)
        }
    };
    let mut v = json!({
        "Id": rec.id,
        "Created": rec.created,
        "Path": argv.first().cloned().unwrap_or_default(),
        "Args": argv.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": st.status_word(),
            "Running": st.running(),
            "Paused": st.status == Status::Paused,
            "Restarting": st.restarting,
            "OOMKilled": st.oom_killed,
            "Dead": st.status == Status::Dead,
            "Pid": st.pid.unwrap_or(0),
            "ExitCode": st.exit_code,
            "Error": st.error.clone().unwrap_or_default(),
            "StartedAt": st.started_at.clone().unwrap_or(zero.clone()),
            "FinishedAt": st.finished_at.clone().unwrap_or(zero),
        },
        "Image": rec.image_id.as_str(),
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        // docker names the file for json-file only.
        "LogPath": if rec.log_config.driver == "json-file" { json!(e.log_path(&rec.id)) } else { json!("") },
        "Name": format!("/{}", rec.name),
        "RestartCount": rec.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": {
            "Binds": if rec.host.binds.is_empty() { Value::Null } else { json!(rec.host.binds) },
            "LogConfig": { "Type": rec.log_config.driver, "Config": rec.log_config.options },
            "NetworkMode": rec.host.network_mode(),
            "PortBindings": ports_map(&rec.host.port_bindings, None),
            "PublishAllPorts": rec.host.publish_all,
            "Dns": rec.host.dns,
            "DnsSearch": rec.host.dns_search,
            "DnsOptions": rec.host.dns_options,
            "ExtraHosts": if rec.host.extra_hosts.is_empty() { Value::Null } else { json!(rec.host.extra_hosts) },
            "RestartPolicy": {
                "Name": rec.restart_policy.name(),
                "MaximumRetryCount": rec.restart_policy.maximum_retry_count(),
            },
            "AutoRemove": rec.host.auto_remove,
            "ReadonlyRootfs": rec.host.readonly_rootfs,
            "Memory": rec.host.memory,
            "MemorySwap": match (rec.host.memory, rec.host.memory_swap) {
                (0, s) => s,
                (m, 0) => m * 2,
                (_, s) => s,
            },
            "NanoCpus": rec.host.nano_cpus,
            "PidsLimit": if rec.host.pids_limit > 0 { json!(rec.host.pids_limit) } else { Value::Null },
            "Privileged": rec.host.privileged,
            "CgroupParent": rec.host.cgroup_parent,
            "MaskedPaths": rec.host.masked_paths(),
            "ReadonlyPaths": rec.host.readonly_paths(),
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": lower.join(":"),
                "UpperDir": dir.join("upper"),
                "WorkDir": dir.join("work"),
                "MergedDir": dir.join("run/rootfs"),
            },
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": hostname_of(rec),
            "Domainname": rec.config.domainname,
            "User": rec.config.user,
            "AttachStdin": attached("stdin", rec.config.open_stdin),
            "AttachStdout": attached("stdout", true),
            "AttachStderr": attached("stderr", true),
            "Tty": rec.config.tty,
            "OpenStdin": rec.config.open_stdin,
            "StdinOnce": rec.config.open_stdin,
            // docker's merge leaves a nil list when neither the image nor the run sets one.
            "Env": if rec.config.env.is_empty() { Value::Null } else { json!(rec.config.env) },
            "Cmd": if rec.config.cmd.is_empty() { Value::Null } else { json!(rec.config.cmd) },
            "Image": rec.image,
            "Volumes": if env_map.is_empty() { Value::Null } else { json!(env_map) },
            "WorkingDir": rec.config.working_dir,
            "Entrypoint": if rec.config.entrypoint.is_empty() { Value::Null } else { json!(rec.config.entrypoint) },
            "OnBuild": null,
            "Labels": rec.config.labels,
            "StopSignal": rec.config.stop_signal,
        },
        "NetworkSettings": network_settings(rec, &e.network_state(rec, st.status)),
    });
    if let Some(h) = e.health_in(rec, &st) {
        v["State"]["Health"] = json!({
            "Status": h.status,
            "FailingStreak": h.failing_streak,
            "Log": h.log.iter().map(|r| json!({
                "Start": r.start,
                "End": r.end,
                "ExitCode": r.exit_code,
                "Output": r.output,
            })).collect::<Vec<_>>(),
        });
    }
    if let Some(h) = &rec.config.healthcheck {
        // docker leaves out the fields left at zero.
        let mut check = json!({ "Test": h.test });
        for (k, n) in [
            ("Interval", h.interval),
            ("Timeout", h.timeout),
            ("StartPeriod", h.start_period),
            ("Retries", h.retries),
            ("StartInterval", h.start_interval),
        ] {
            if n != 0 {
                check[k] = json!(n);
            }
        }
        v["Config"]["Healthcheck"] = check;
    }
    if let Some(t) = rec.config.stop_timeout {
        v["Config"]["StopTimeout"] = json!(t);
    }
    long_form(&mut v, rec);
    confinement(&mut v["HostConfig"], &rec.host);
    if size {
        v["SizeRw"] = json!(e.size_rw(rec));
    }
    v
}

/// What `--mount`, `--volumes-from`, `--init`, `--expose`, `--mac-address`,
/// `--annotation` and the namespace modes put in docker's document.
fn long_form(v: &mut Value, rec: &ContainerRecord) {
    let h = &rec.host;
    let host = &mut v["HostConfig"];
    if !h.mounts.is_empty() {
        host["Mounts"] = Value::Array(
            h.mounts
                .iter()
                .map(|m| {
                    let mut d = json!({ "Type": m.kind, "Target": m.target });
                    if !m.source.is_empty() {
                        d["Source"] = json!(m.source);
                    }
                    if m.read_only {
                        d["ReadOnly"] = json!(true);
                    }
                    if !m.propagation.is_empty() || m.non_recursive {
                        d["BindOptions"] = json!({ "Propagation": m.propagation });
                        if m.non_recursive {
                            d["BindOptions"]["NonRecursive"] = json!(true);
                        }
                    }
                    if m.no_copy {
                        d["VolumeOptions"] = json!({ "NoCopy": true });
                    }
                    if m.tmpfs_size != 0 || m.tmpfs_mode != 0 {
                        d["TmpfsOptions"] = json!({});
                        if m.tmpfs_size != 0 {
                            d["TmpfsOptions"]["SizeBytes"] = json!(m.tmpfs_size);
                        }
                        if m.tmpfs_mode != 0 {
                            d["TmpfsOptions"]["Mode"] = json!(m.tmpfs_mode);
                        }
                    }
                    d
                })
                .collect(),
        );
    }
    host["VolumesFrom"] = if h.volumes_from.is_empty() {
        Value::Null
    } else {
        json!(h.volumes_from)
    };
    host["Init"] = if h.init { json!(true) } else { Value::Null };
    host["PidMode"] = json!(h.pid_mode);
    host["IpcMode"] = json!(if h.ipc_mode.is_empty() {
        "private"
    } else {
        &h.ipc_mode
    });
    host["UTSMode"] = json!(h.uts_mode);
    host["UsernsMode"] = json!(h.userns_mode);
    host["CgroupnsMode"] = json!(h.cgroupns_mode);
    if !h.annotations.is_empty() {
        host["Annotations"] = json!(h.annotations);
    }
    let config = &mut v["Config"];
    if !rec.config.exposed_ports.is_empty() {
        let ports: BTreeMap<&str, Value> = rec
            .config
            .exposed_ports
            .iter()
            .map(|p| (p.as_str(), json!({})))
            .collect();
        config["ExposedPorts"] = json!(ports);
    }
    if !rec.config.mac_address.is_empty() {
        config["MacAddress"] = json!(rec.config.mac_address);
    }
}

/// docker's NetworkSettings: one entry per network under `Networks` (addresses while the
/// container runs, what it asked for always); the top-level address fields are the default
/// bridge's, as docker fills them, and `Ports` the published ports while it runs.
fn network_settings(rec: &ContainerRecord, net: &Option<NetworkState>) -> Value {
    let live = |network: &str, id: &str| {
        net.as_ref().and_then(|n| {
            n.endpoints
                .iter()
                .find(|x| x.network == network || (!id.is_empty() && x.network_id == id))
                .cloned()
                .or_else(|| {
                    // Written before containers had several networks: the bridge alone.
                    (n.endpoints.is_empty() && network == "bridge").then(|| EndpointState {
                        network: "bridge".into(),
                        ip_address: n.ip_address.clone(),
                        gateway: n.gateway.clone(),
                        prefix: n.prefix,
                        mac_address: n.mac_address.clone(),
                        ..EndpointState::default()
                    })
                })
        })
    };
    let asked: Vec<EndpointConfig> = match rec.host.network {
        NetworkMode::Bridge if rec.host.networks.is_empty() => vec![EndpointConfig {
            network: "bridge".into(),
            ..EndpointConfig::default()
        }],
        NetworkMode::Bridge => rec.host.networks.clone(),
        NetworkMode::Host | NetworkMode::None | NetworkMode::Pasta => vec![EndpointConfig {
            network: rec.host.network.as_str().into(),
            ..EndpointConfig::default()
        }],
        NetworkMode::Container => vec![],
    };
    let mut networks = serde_json::Map::new();
    let mut top = json!({
        "IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "MacAddress": "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPv6Gateway": "",
    });
    for c in &asked {
        let user = !c.network_id.is_empty();
        let id = if user {
            c.network_id.clone()
        } else {
            predefined_id(&c.network)
        };
        let ep = live(&c.network, &c.network_id).unwrap_or_default();
        let running = !ep.ip_address.is_empty();
        let mut aliases = c.aliases.clone();
        if user {
            aliases.push(rec.short_id().to_string());
        }
        let dns_names = user.then(|| {
            let mut v = vec![rec.name.clone(), rec.short_id().to_string()];
            v.extend(c.aliases.iter().cloned());
            v
        });
        let entry = json!({
            "IPAMConfig": ipam_config(c),
            "Links": null,
            "Aliases": if user { json!(aliases) } else { Value::Null },
            "MacAddress": ep.mac_address,
            "DriverOpts": null,
            "NetworkID": id,
            "EndpointID": if running { endpoint_id(&rec.id, &id) } else { String::new() },
            "Gateway": ep.gateway,
            "IPAddress": ep.ip_address,
            "IPPrefixLen": ep.prefix,
            "IPv6Gateway": ep.ipv6_gateway,
            "GlobalIPv6Address": ep.global_ipv6_address,
            "GlobalIPv6PrefixLen": ep.global_ipv6_prefix,
            "DNSNames": dns_names,
        });
        if c.network == "bridge" {
            top = json!({
                "IPAddress": ep.ip_address,
                "IPPrefixLen": ep.prefix,
                "Gateway": ep.gateway,
                "MacAddress": ep.mac_address,
                "GlobalIPv6Address": ep.global_ipv6_address,
                "GlobalIPv6PrefixLen": ep.global_ipv6_prefix,
                "IPv6Gateway": ep.ipv6_gateway,
            });
        }
        networks.insert(c.network.clone(), entry);
    }
    let mut v = top;
    v["Networks"] = Value::Object(networks);
    v["Ports"] = net.as_ref().map_or(json!({}), |n| {
        ports_map(&n.ports, Some(&rec.config.exposed_ports))
    });
    v
}

pub fn run(g: &Globals, a: InspectArgs) -> Result<i32> {
    let (format, size) = (InspectFormat::parse(a.format.as_deref())?, a.size);
    let a = &a.c;
    let e = g.engine()?;
    let mut out = Vec::new();
    let mut code = 0;
    for name in &a.containers {
        match e.resolve(name) {
            Ok(rec) => out.push(inspect_value(&e, &rec, size)),
            Err(err) => {
                eprintln!("Error: {err}");
                code = 1;
            }
        }
    }
    format.print(&out, &DOC)?;
    Ok(code)
}

/// docker's `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}`; `host_port` 0 is
/// written empty, as docker writes a binding whose host port is chosen at start. A binding
/// on every address keeps the empty `HostIp` it was asked with in `HostConfig.PortBindings`
/// and shows the address it listens on, `0.0.0.0`, once bound (`NetworkSettings.Ports`, where
/// the `exposed` ports without a binding are `null`).
fn ports_map(ports: &[PortBinding], exposed: Option<&Vec<String>>) -> Value {
    let bound = exposed.is_some();
    let mut m: BTreeMap<String, Value> = BTreeMap::new();
    for p in ports {
        let host_port = if p.host_port == 0 {
            String::new()
        } else {
            p.host_port.to_string()
        };
        let host_ip = match p.host_ip.as_str() {
            "" if bound => "0.0.0.0",
            ip => ip,
        };
        let list = m.entry(p.key()).or_insert_with(|| json!([]));
        if let Some(list) = list.as_array_mut() {
            list.push(json!({ "HostIp": host_ip, "HostPort": host_port }));
        }
    }
    for key in exposed.into_iter().flatten() {
        m.entry(key.clone()).or_insert(Value::Null);
    }
    json!(m)
}

/// docker's confinement fields of HostConfig (beside the json! above, which is at the
/// macro's recursion limit).
fn confinement(h: &mut Value, host: &berth_client::engine::HostConfig) {
    let list = |v: &Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };
    h["CapAdd"] = list(&host.cap_add);
    h["CapDrop"] = list(&host.cap_drop);
    h["SecurityOpt"] = list(&host.security_opt);
    let r = &host.resources;
    h["Devices"] = json!(r
        .devices
        .iter()
        .map(|d| json!({
            "PathOnHost": d.path_on_host,
            "PathInContainer": d.path_in_container,
            "CgroupPermissions": d.cgroup_permissions,
        }))
        .collect::<Vec<_>>());
    h["DeviceCgroupRules"] = list(&r.device_cgroup_rules);
    h["GroupAdd"] = list(&r.group_add);
    if !r.sysctls.is_empty() {
        h["Sysctls"] = json!(r.sysctls);
    }
    h["Ulimits"] = json!(r
        .ulimits
        .iter()
        .map(|u| json!({ "Name": u.name, "Hard": u.hard, "Soft": u.soft }))
        .collect::<Vec<_>>());
    h["ShmSize"] = json!(if r.shm_size > 0 {
        r.shm_size
    } else {
        DEFAULT_SHM_SIZE
    });
    if !r.tmpfs.is_empty() {
        h["Tmpfs"] = json!(r.tmpfs);
    }
    h["OomKillDisable"] = json!(r.oom_kill_disable);
    h["OomScoreAdj"] = json!(r.oom_score_adj);
    h["CpuShares"] = json!(r.cpu_shares);
    h["CpuPeriod"] = json!(r.cpu_period);
    h["CpuQuota"] = json!(r.cpu_quota);
    h["CpuRealtimePeriod"] = json!(r.cpu_realtime_period);
    h["CpuRealtimeRuntime"] = json!(r.cpu_realtime_runtime);
    h["CpusetCpus"] = json!(r.cpuset_cpus);
    h["CpusetMems"] = json!(r.cpuset_mems);
    h["MemoryReservation"] = json!(r.memory_reservation);
    h["MemorySwappiness"] = json!(r.memory_swappiness);
    h["BlkioWeight"] = json!(r.blkio_weight);
}

/// docker's `IPAMConfig` of an endpoint: the addresses asked for with `--ip`/`--ip6`, or null.
fn ipam_config(c: &berth_client::engine::EndpointConfig) -> Value {
    let mut m = serde_json::Map::new();
    if !c.ipv4_address.is_empty() {
        m.insert("IPv4Address".into(), json!(c.ipv4_address));
    }
    if !c.ipv6_address.is_empty() {
        m.insert("IPv6Address".into(), json!(c.ipv6_address));
    }
    if m.is_empty() {
        Value::Null
    } else {
        Value::Object(m)
    }
}

/// docker's container document; a run that fails on its types runs again on its JSON.
pub const DOC: Schema = Schema {
    root: "container.InspectResponse",
    types: &[],
    raw_fallback: true,
};

//! What a connection's life puts in the log: its opening (the connection,
//! the device paired or its token issued on first connect, a node's
//! surface and pairing request, the presence entry), and its closing.
//!
//! Why apart from `connection`: that module moves frames; this one decides
//! which facts a connect and a disconnect are, and appends them before the
//! client is told anything, so the socket loop stays readable.

use std::net::SocketAddr;

use clawback_events::event::{
    ClientInfo, ConnectionClosed, ConnectionOpened, DevicePaired, DeviceTokenIssued, Event,
    NodeConnected, NodePairRequested, NodePairResolved, NodeSurface, PresenceChange,
    PresenceChanged, PresenceEntry,
};
use clawback_events::{Actor, NewEvent};

use serde_json::Value;

use super::connect::ConnectRequest;
use super::connection::Session;
use super::device;
use super::methods;
use super::pairing::{self, Pairing};
use crate::gateway::Gateway;

pub(super) async fn record_open(
    gateway: &Gateway,
    session: &Session,
    connect: &ConnectRequest,
    remote: SocketAddr,
    device: &Option<device::VerifiedDevice>,
    pairing: Pairing,
) -> Result<Option<String>, clawback_events::log::AppendError> {
    let actor = Actor::Connection {
        conn_id: session.conn_id.clone(),
        device_id: session.device_id.clone(),
    };
    let mut events = Vec::with_capacity(3);
    if let (Some(device), Pairing::AutoApproveLoopback) = (device, pairing) {
        events.push(NewEvent::new(
            "gateway",
            actor.clone(),
            Event::DevicePaired(DevicePaired {
                device_id: device.device_id.clone(),
                public_key: device.public_key.clone(),
                role: session.role.clone(),
                scopes: session.scopes.clone(),
                approved_by: "auto-loopback".to_owned(),
            }),
        ));
    }
    let opened = Event::ConnectionOpened(ConnectionOpened {
        conn_id: session.conn_id.clone(),
        remote_addr: remote.to_string(),
        client: ClientInfo {
            id: connect.client_id.clone(),
            version: connect.client_version.clone(),
            platform: connect.client_platform.clone(),
            mode: connect.client_mode.clone(),
            display_name: connect.display_name.clone(),
            instance_id: connect.instance_id.clone(),
        },
        role: session.role.clone(),
        scopes: session.scopes.clone(),
        // Only a verified, paired device is recorded as the connection's.
        device_id: session.device_id.clone(),
        auth_method: gateway.auth.method().to_owned(),
    });
    let presence = Event::PresenceChanged(PresenceChanged {
        key: presence_key(session, connect),
        change: PresenceChange::Upsert(PresenceEntry {
            host: connect.display_name.clone(),
            ip: Some(remote.ip().to_string()),
            version: Some(connect.client_version.clone()),
            platform: Some(connect.client_platform.clone()),
            mode: Some(connect.client_mode.clone()),
            reason: Some("connect".to_owned()),
            text: None,
            device_id: session.device_id.clone(),
            roles: vec![session.role.clone()],
            scopes: session.scopes.clone(),
        }),
    });
    tracing::info!(
        subsystem = "ws",
        conn = session.conn_id.as_str(),
        client = connect.client_id.as_str(),
        mode = connect.client_mode.as_str(),
        remote = remote.to_string(),
        "{} {} connected as {}",
        connect.client_id,
        connect.client_version,
        session.role
    );
    events.push(NewEvent::new("gateway", actor.clone(), opened));
    if let (Some(device), "node") = (device, session.role.as_str()) {
        let silent = pairing == Pairing::AutoApproveLoopback
            || gateway
                .state
                .read()
                .expect("state lock")
                .devices
                .devices
                .get(&device.device_id)
                .is_some_and(|paired| paired.paired.approved_by == "auto-loopback");
        for event in
            node_connect_events(gateway, session, connect, remote, &device.device_id, silent)
        {
            events.push(NewEvent::new("gateway", actor.clone(), event));
        }
    }
    // A paired device without a token for this role gets one, to connect
    // later without the shared secret.
    let mut issued = None;
    if let (Some(device), Pairing::Paired | Pairing::AutoApproveLoopback) = (device, pairing) {
        let has_token = gateway
            .state
            .read()
            .expect("state lock")
            .devices
            .tokens
            .contains_key(&(device.device_id.clone(), session.role.clone()));
        if !has_token && let Ok((token, digest)) = pairing::new_token() {
            events.push(NewEvent::new(
                "gateway",
                actor.clone(),
                Event::DeviceTokenIssued(DeviceTokenIssued {
                    device_id: device.device_id.clone(),
                    role: session.role.clone(),
                    scopes: session.scopes.clone(),
                    token_digest: digest,
                }),
            ));
            issued = Some(token);
        }
    }
    events.push(NewEvent::new("gateway", actor, presence));
    gateway.log.append(events).await.map(|_| issued)
}

/// What a node's connect records: its session, and a surface request when
/// what it declares is not (all) approved. An identical pending request is
/// reused; another one is superseded (OpenClaw reports it rejected), as is
/// a pending request the node no longer needs.
fn node_connect_events(
    gateway: &Gateway,
    session: &Session,
    connect: &ConnectRequest,
    remote: SocketAddr,
    node_id: &str,
    silent: bool,
) -> Vec<Event> {
    let surface = NodeSurface {
        client_id: connect.client_id.clone(),
        client_mode: connect.client_mode.clone(),
        display_name: connect.display_name.clone(),
        platform: connect.client_platform.clone(),
        version: connect.client_version.clone(),
        device_family: connect.device_family.clone(),
        model_identifier: connect.model_identifier.clone(),
        remote_ip: (!remote.ip().is_loopback()).then(|| remote.ip().to_string()),
        caps: connect.caps.clone(),
        commands: connect
            .commands
            .iter()
            .filter(|command| !methods::node_invoke::is_private(command))
            .cloned()
            .collect(),
        // serde_json's map is ordered: this is canonical.
        permissions: connect
            .permissions
            .as_ref()
            .filter(|permissions| !permissions.is_empty())
            .map(|permissions| Value::Object(permissions.clone()).to_string()),
    };
    let state = gateway.state.read().expect("state lock");
    let contains = |approved: &[String], declared: &[String]| {
        declared.iter().all(|item| approved.contains(item))
    };
    let needs_approval = match state.nodes.paired.get(node_id) {
        None => true,
        Some(approved) => {
            !contains(&approved.surface.commands, &surface.commands)
                || !contains(&approved.surface.caps, &surface.caps)
                || permission_upgrade(
                    approved.surface.permissions.as_deref(),
                    connect.permissions.as_ref(),
                )
        }
    };
    let pending = state
        .nodes
        .pending_for(node_id)
        .map(|pending| &pending.request);
    fn set(list: &[String]) -> std::collections::BTreeSet<&String> {
        list.iter().collect()
    }
    let same = |other: &NodeSurface| {
        set(&other.caps) == set(&surface.caps)
            && set(&other.commands) == set(&surface.commands)
            && other.permissions == surface.permissions
    };
    let mut events = Vec::with_capacity(3);
    let superseded = |request: &NodePairRequested| {
        Event::NodePairResolved(NodePairResolved {
            request_id: request.request_id.clone(),
            node_id: node_id.to_owned(),
            decision: "superseded".to_owned(),
            reviewer: "gateway".to_owned(),
        })
    };
    match (needs_approval, pending) {
        (true, Some(pending)) if same(&pending.surface) => {}
        (true, pending) => {
            events.extend(pending.map(superseded));
            events.push(Event::NodePairRequested(NodePairRequested {
                request_id: uuid::Uuid::new_v4().to_string(),
                node_id: node_id.to_owned(),
                surface: surface.clone(),
                silent,
            }));
        }
        (false, pending) => events.extend(pending.map(superseded)),
    }
    events.push(Event::NodeConnected(NodeConnected {
        conn_id: session.conn_id.clone(),
        node_id: node_id.to_owned(),
        surface,
    }));
    events
}

/// A permission the node now claims (`true`) that the approval did not
/// grant.
fn permission_upgrade(
    approved: Option<&str>,
    declared: Option<&serde_json::Map<String, Value>>,
) -> bool {
    let approved: serde_json::Map<String, Value> = approved
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    declared.is_some_and(|declared| {
        declared.iter().any(|(key, value)| {
            let claimed = !matches!(value, Value::Null | Value::Bool(false));
            claimed && approved.get(key) != Some(&Value::Bool(true))
        })
    })
}

fn presence_key(session: &Session, connect: &ConnectRequest) -> String {
    connect
        .instance_id
        .clone()
        .unwrap_or_else(|| session.conn_id.clone())
}

pub(super) async fn record_close(gateway: &Gateway, session: &Session) {
    tracing::info!(
        subsystem = "ws",
        conn = session.conn_id.as_str(),
        "connection closed"
    );
    let actor = Actor::Connection {
        conn_id: session.conn_id.clone(),
        device_id: session.device_id.clone(),
    };
    let key = {
        let state = gateway.state.read().expect("state lock");
        state
            .presence
            .connections
            .get(&session.conn_id)
            .and_then(|connection| connection.opened.client.instance_id.clone())
            .unwrap_or_else(|| session.conn_id.clone())
    };
    // Invokes sent to this node end with it, recorded before the close.
    let (ended, tell_waiters) = gateway.node_invokes.disconnected(&session.conn_id);
    let mut events: Vec<NewEvent> = ended
        .into_iter()
        .map(|event| NewEvent::new("gateway", Actor::System, event))
        .collect();
    events.extend([
        NewEvent::new(
            "gateway",
            actor.clone(),
            Event::ConnectionClosed(ConnectionClosed {
                conn_id: session.conn_id.clone(),
                code: 1000,
                reason: String::new(),
            }),
        ),
        NewEvent::new(
            "gateway",
            actor,
            Event::PresenceChanged(PresenceChanged {
                key,
                change: PresenceChange::Removed {
                    reason: "disconnect".to_owned(),
                },
            }),
        ),
    ]);
    // A writer that has stopped cannot record the close; the next start's
    // gateway.started ends the connection in the projections anyway.
    let recorded = gateway.log.append(events).await.is_ok();
    tell_waiters(recorded);
}

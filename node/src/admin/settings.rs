//! The settings rules: what the configuration seeds into an application's stored settings,
//! and the signalling and media options that follow the first application's settings.
//!
//! The AMS settings of an application live in the datastore. On the first start (no stored
//! settings for the application) they are seeded from the configuration: the AMS defaults,
//! then the top-level signalling keys of the TOML file (`stunServerURI`,
//! `webRTCClientStartTimeoutMs`, …), then the application's `[apps.<App>]` table. After that the
//! **stored settings win**: `PUT /rest/v2/applications/settings/<App>` changes them at once and
//! they persist across restarts; editing the file later has no effect on a stored application
//! (delete the data directory, or use the REST API).
//!
//! Signalling options are server-wide, so they follow the settings of the **first**
//! application (`apps[0]`): `webRTCClientStartTimeoutMs`, `playWebRTCStreamOnceForEachSession`,
//! `stunServerURI`, `turnServerUsername`, `turnServerCredential`, `maxVideoTrackCount`, and the
//! data channel settings. Security settings are per application and always read live from the
//! store.

use std::time::Duration;

use antenna_store::AppSettings;
use serde_json::{Map, Value};
use tracing::warn;

/// The settings seeded for `app`: AMS defaults, then the top-level signalling options of the
/// configuration, then the application's table. Keys Antenna does not model are kept (and
/// logged), a wrongly typed value is an error.
pub fn seed_for(
    app: &str,
    signalling: &proto_core::Config,
    table: Option<&Map<String, Value>>,
) -> Result<AppSettings, String> {
    let mut base = AppSettings {
        webrtc_client_start_timeout_ms: u64::try_from(signalling.client_start_timeout.as_millis())
            .unwrap_or(u64::MAX),
        play_webrtc_stream_once_for_each_session: signalling.play_once_per_session,
        stun_server_uri: signalling.ice_servers.stun_server_uri.clone(),
        turn_server_username: signalling
            .ice_servers
            .turn_server_username
            .clone()
            .unwrap_or_default(),
        turn_server_credential: signalling
            .ice_servers
            .turn_server_credential
            .clone()
            .unwrap_or_default(),
        max_video_track_count: signalling.max_track_count,
        ..AppSettings::default()
    };
    if let Some(table) = table {
        let mut merged = match serde_json::to_value(&base) {
            Ok(Value::Object(m)) => m,
            _ => return Err("cannot encode the default settings".into()),
        };
        merged.extend(table.clone());
        base = serde_json::from_value(Value::Object(merged))
            .map_err(|e| format!("[apps.{app}]: {e}"))?;
        antenna_store::parse_cidr_list(&base.remote_allowed_cidr)
            .map_err(|e| format!("[apps.{app}] remoteAllowedCIDR: {e}"))?;
        for key in base.extra.keys() {
            warn!(app, key, "setting not used by antenna; stored as given");
        }
    }
    Ok(base)
}

/// Applies an application's settings to the signalling options that mirror them.
pub fn apply_to_signalling(settings: &AppSettings, config: &mut proto_core::Config) {
    config.client_start_timeout = Duration::from_millis(settings.webrtc_client_start_timeout_ms);
    config.play_once_per_session = settings.play_webrtc_stream_once_for_each_session;
    config.ice_servers = proto_core::IceServers {
        stun_server_uri: settings.stun_server_uri.clone(),
        turn_server_username: Some(settings.turn_server_username.clone()).filter(|s| !s.is_empty()),
        turn_server_credential: Some(settings.turn_server_credential.clone())
            .filter(|s| !s.is_empty()),
    };
    config.max_track_count = settings.max_video_track_count;
}

/// Applies an application's data channel settings (`dataChannelEnabled`,
/// `dataChannelPlayerDistribution`) to the media layer's; the message size limit is kept. An
/// unknown distribution value counts as AMS's default `all`.
pub fn apply_to_data(settings: &AppSettings, config: &mut rtc_core::DataConfig) {
    config.enabled = settings.data_channel_enabled;
    config.player_distribution =
        rtc_core::PlayerDistribution::parse(&settings.data_channel_player_distribution)
            .unwrap_or_else(|| {
                warn!(
                    value = %settings.data_channel_player_distribution,
                    "unknown dataChannelPlayerDistribution; using all"
                );
                rtc_core::PlayerDistribution::All
            });
}

#[cfg(test)]
mod tests;

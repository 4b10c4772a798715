//! A JSON-RPC 2.0 client of a Lotus full node's API v1 (`POST /rpc/v1`,
//! bearer token, parameters by position), limited to the methods a sealing
//! and proving miner needs. Every call has a timeout; calls that only read
//! are retried on transport errors, a node's own error is returned as is.

use super::json::{
    AddressJson, AttoFil, Base64, BitFieldJson, CidJson, DeadlineInfo, MessageJson, MessageSendSpec,
    MinerInfo, MsgLookup, Partition, SectorOnChainInfo, SectorPreCommitInfoJson, SectorPreCommitOnChainInfo,
    SignedMessageJson, TipSet, TipSetKey,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The largest answer read (a miner's whole sector list fits many times over).
pub const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The node could not be reached, or the connection broke.
    #[error("{url}: {method}: cannot reach the node: {reason}")]
    Unreachable {
        /// The node.
        url: String,
        /// The method.
        method: &'static str,
        /// Why.
        reason: String,
    },
    /// The node refused the token.
    #[error("{url}: {method}: the node refused the token (HTTP {status}): check [chain] token_file")]
    Unauthorized {
        /// The node.
        url: String,
        /// The method.
        method: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// The node answered with an error.
    #[error("{method}: the node answered error {code}: {message}")]
    Node {
        /// The method.
        method: &'static str,
        /// JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// The answer is not what the method returns.
    #[error("{method}: malformed answer: {reason}")]
    Malformed {
        /// The method.
        method: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl RpcError {
    /// Whether trying again later may succeed (the node or the network is
    /// down, or the node is overloaded), as opposed to an answer that will
    /// not change.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

/// How to reach a node.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// The API's URL (`http://127.0.0.1:1234/rpc/v1`).
    pub url: String,
    /// The bearer token (a Lotus API token with `sign` rights to send).
    pub token: Option<String>,
    /// The longest a call may take.
    pub timeout: Duration,
    /// Attempts of a read that fails in transport.
    pub read_attempts: u32,
    /// Wait between them.
    pub retry_backoff: Duration,
}

/// A Lotus client.
pub struct LotusClient {
    config: RpcConfig,
    agent: ureq::Agent,
    next_id: AtomicU64,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<NodeError>,
}

#[derive(Deserialize)]
struct NodeError {
    code: i64,
    message: String,
}

impl LotusClient {
    /// A client of the node at `config.url`.
    pub fn new(config: RpcConfig) -> Self {
        let agent = ureq::AgentBuilder::new().timeout_connect(config.timeout).timeout(config.timeout).build();
        Self { config, agent, next_id: AtomicU64::new(1) }
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// Calls `method` (without its `Filecoin.` prefix) once.
    pub fn call<R: DeserializeOwned>(&self, method: &'static str, params: Vec<Value>) -> Result<R, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body =
            json!({ "jsonrpc": "2.0", "id": id, "method": format!("Filecoin.{method}"), "params": params });
        let mut request = self.agent.post(&self.config.url).set("Content-Type", "application/json");
        if let Some(token) = &self.config.token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let unreachable =
            |reason: String| RpcError::Unreachable { url: self.config.url.clone(), method, reason };
        let response = match request.send_json(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(status @ (401 | 403), _)) => {
                return Err(RpcError::Unauthorized { url: self.config.url.clone(), method, status })
            }
            // Lotus answers JSON-RPC errors with 500 and a JSON body.
            Err(ureq::Error::Status(status, r)) if r.content_type() == "application/json" => {
                let _ = status;
                r
            }
            Err(ureq::Error::Status(status, r)) => {
                return Err(unreachable(format!("HTTP {status} {}", r.status_text())));
            }
            Err(ureq::Error::Transport(t)) => return Err(unreachable(t.to_string())),
        };
        let mut text = Vec::new();
        response
            .into_reader()
            .take(MAX_ANSWER_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(|e| unreachable(format!("reading the answer: {e}")))?;
        if text.len() as u64 > MAX_ANSWER_BYTES {
            return Err(RpcError::Malformed {
                method,
                reason: format!("answer over {MAX_ANSWER_BYTES} bytes"),
            });
        }
        let answer: Answer = serde_json::from_slice(&text)
            .map_err(|e| RpcError::Malformed { method, reason: format!("not a JSON-RPC answer: {e}") })?;
        if let Some(e) = answer.error {
            return Err(RpcError::Node { method, code: e.code, message: e.message });
        }
        serde_json::from_value(answer.result.unwrap_or(Value::Null))
            .map_err(|e| RpcError::Malformed { method, reason: e.to_string() })
    }

    /// Calls a method that only reads, retrying transport failures.
    fn read<R: DeserializeOwned>(&self, method: &'static str, params: Vec<Value>) -> Result<R, RpcError> {
        let mut attempt = 1;
        loop {
            match self.call(method, params.clone()) {
                Err(e) if e.is_transient() && attempt < self.config.read_attempts.max(1) => {
                    tracing::warn!(method, attempt, error = %e, "retrying a read of the chain");
                    std::thread::sleep(self.config.retry_backoff * attempt);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `ChainHead`.
    pub fn chain_head(&self) -> Result<TipSet, RpcError> {
        self.read("ChainHead", vec![])
    }

    /// `ChainGetTipSetByHeight`: the tipset at `height` (or the one before a null round) on `tsk`'s chain.
    pub fn chain_get_tipset_by_height(&self, height: i64, tsk: &TipSetKey) -> Result<TipSet, RpcError> {
        self.read("ChainGetTipSetByHeight", vec![json!(height), to_value(tsk)])
    }

    /// `StateNetworkVersion`.
    pub fn state_network_version(&self, tsk: &TipSetKey) -> Result<u32, RpcError> {
        self.read("StateNetworkVersion", vec![to_value(tsk)])
    }

    /// `StateMinerInfo`.
    pub fn state_miner_info(&self, miner: &AddressJson, tsk: &TipSetKey) -> Result<MinerInfo, RpcError> {
        self.read("StateMinerInfo", vec![to_value(miner), to_value(tsk)])
    }

    /// `StateLookupID`: the id address of any address.
    pub fn state_lookup_id(&self, address: &AddressJson, tsk: &TipSetKey) -> Result<AddressJson, RpcError> {
        self.read("StateLookupID", vec![to_value(address), to_value(tsk)])
    }

    /// `StateMinerSectorAllocated`: whether a sector number is taken.
    pub fn state_miner_sector_allocated(
        &self,
        miner: &AddressJson,
        sector: u64,
        tsk: &TipSetKey,
    ) -> Result<bool, RpcError> {
        self.read("StateMinerSectorAllocated", vec![to_value(miner), json!(sector), to_value(tsk)])
    }

    /// `StateMinerAllocated`: every sector number taken.
    pub fn state_miner_allocated(
        &self,
        miner: &AddressJson,
        tsk: &TipSetKey,
    ) -> Result<BitFieldJson, RpcError> {
        self.read("StateMinerAllocated", vec![to_value(miner), to_value(tsk)])
    }

    /// `StateGetRandomnessFromTickets`.
    pub fn state_get_randomness_from_tickets(
        &self,
        tag: i64,
        epoch: i64,
        entropy: &[u8],
        tsk: &TipSetKey,
    ) -> Result<Vec<u8>, RpcError> {
        let r: Base64 = self.read(
            "StateGetRandomnessFromTickets",
            vec![json!(tag), json!(epoch), to_value(&Base64(entropy.to_vec())), to_value(tsk)],
        )?;
        Ok(r.0)
    }

    /// `StateGetRandomnessFromBeacon`.
    pub fn state_get_randomness_from_beacon(
        &self,
        tag: i64,
        epoch: i64,
        entropy: &[u8],
        tsk: &TipSetKey,
    ) -> Result<Vec<u8>, RpcError> {
        let r: Base64 = self.read(
            "StateGetRandomnessFromBeacon",
            vec![json!(tag), json!(epoch), to_value(&Base64(entropy.to_vec())), to_value(tsk)],
        )?;
        Ok(r.0)
    }

    /// `StateMinerPreCommitDepositForPower`: the deposit a PreCommit of `info` must carry.
    pub fn state_miner_pre_commit_deposit_for_power(
        &self,
        miner: &AddressJson,
        info: &SectorPreCommitInfoJson,
        tsk: &TipSetKey,
    ) -> Result<AttoFil, RpcError> {
        self.read("StateMinerPreCommitDepositForPower", vec![to_value(miner), to_value(info), to_value(tsk)])
    }

    /// `StateMinerInitialPledgeForSector`: the pledge of a sector of `size`
    /// lasting `duration` epochs with `verified_size` bytes of verified data.
    pub fn state_miner_initial_pledge_for_sector(
        &self,
        duration: i64,
        size: u64,
        verified_size: u64,
        tsk: &TipSetKey,
    ) -> Result<AttoFil, RpcError> {
        self.read(
            "StateMinerInitialPledgeForSector",
            vec![json!(duration), json!(size), json!(verified_size), to_value(tsk)],
        )
    }

    /// `StateSectorPreCommitInfo`: the sector's PreCommit, if one is on chain.
    pub fn state_sector_pre_commit_info(
        &self,
        miner: &AddressJson,
        sector: u64,
        tsk: &TipSetKey,
    ) -> Result<Option<SectorPreCommitOnChainInfo>, RpcError> {
        self.read("StateSectorPreCommitInfo", vec![to_value(miner), json!(sector), to_value(tsk)])
    }

    /// `StateMinerProvingDeadline`: the deadline open now.
    pub fn state_miner_proving_deadline(
        &self,
        miner: &AddressJson,
        tsk: &TipSetKey,
    ) -> Result<DeadlineInfo, RpcError> {
        self.read("StateMinerProvingDeadline", vec![to_value(miner), to_value(tsk)])
    }

    /// `StateMinerPartitions`: the partitions of deadline `deadline`.
    pub fn state_miner_partitions(
        &self,
        miner: &AddressJson,
        deadline: u64,
        tsk: &TipSetKey,
    ) -> Result<Vec<Partition>, RpcError> {
        let partitions: Option<Vec<Partition>> =
            self.read("StateMinerPartitions", vec![to_value(miner), json!(deadline), to_value(tsk)])?;
        Ok(partitions.unwrap_or_default())
    }

    /// `StateMinerSectors`: the proven sectors in `sectors` (all with `None`).
    pub fn state_miner_sectors(
        &self,
        miner: &AddressJson,
        sectors: Option<&BitFieldJson>,
        tsk: &TipSetKey,
    ) -> Result<Vec<SectorOnChainInfo>, RpcError> {
        let found: Option<Vec<SectorOnChainInfo>> =
            self.read("StateMinerSectors", vec![to_value(miner), to_value(&sectors), to_value(tsk)])?;
        Ok(found.unwrap_or_default())
    }

    /// `StateMinerAvailableBalance`: what the miner actor can spend.
    pub fn state_miner_available_balance(
        &self,
        miner: &AddressJson,
        tsk: &TipSetKey,
    ) -> Result<AttoFil, RpcError> {
        self.read("StateMinerAvailableBalance", vec![to_value(miner), to_value(tsk)])
    }

    /// `WalletBalance`.
    pub fn wallet_balance(&self, address: &AddressJson) -> Result<AttoFil, RpcError> {
        self.read("WalletBalance", vec![to_value(address)])
    }

    /// `GasEstimateMessageGas`: `message` with its gas limit, fee cap and premium filled.
    pub fn gas_estimate_message_gas(
        &self,
        message: &MessageJson,
        spec: &MessageSendSpec,
        tsk: &TipSetKey,
    ) -> Result<MessageJson, RpcError> {
        self.read("GasEstimateMessageGas", vec![to_value(message), to_value(spec), to_value(tsk)])
    }

    /// `MpoolGetNonce`: the sender's next nonce, counting its pending messages.
    pub fn mpool_get_nonce(&self, address: &AddressJson) -> Result<u64, RpcError> {
        self.read("MpoolGetNonce", vec![to_value(address)])
    }

    /// `WalletSignMessage`: `message` signed by `signer` (the node's wallet).
    pub fn wallet_sign_message(
        &self,
        signer: &AddressJson,
        message: &MessageJson,
    ) -> Result<SignedMessageJson, RpcError> {
        // Signing has no effect on the chain: it is safe to repeat.
        self.read("WalletSignMessage", vec![to_value(signer), to_value(message)])
    }

    /// `MpoolPush`: sends a signed message; its CID.
    pub fn mpool_push(&self, message: &SignedMessageJson) -> Result<CidJson, RpcError> {
        self.call("MpoolPush", vec![to_value(message)])
    }

    /// `StateSearchMsg`: where `message` was executed, looking back at most
    /// `limit` epochs from `tsk` (no replacement accepted: kiln only ever
    /// sends the exact message it recorded).
    pub fn state_search_msg(
        &self,
        tsk: &TipSetKey,
        message: &CidJson,
        limit: i64,
    ) -> Result<Option<MsgLookup>, RpcError> {
        self.read("StateSearchMsg", vec![to_value(tsk), to_value(message), json!(limit), json!(false)])
    }
}

fn to_value<T: Serialize + ?Sized>(value: &T) -> Value {
    serde_json::to_value(value).expect("kiln's Lotus JSON types always serialize")
}

//! Lotus's JSON for the values kiln reads and writes (the full-node API v1):
//! CIDs as `{"/": "bafy…"}`, token amounts as decimal strings, bytes as
//! base64, addresses as `f0…`/`f1…` strings, bitfields as RLE run lists, a
//! tipset key as a list of CIDs. Field names are Lotus's (Go's) own.

use base64::Engine;
use cid::Cid;
use fvm_ipld_bitfield::BitField;
use fvm_shared::address::Address;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A CID as Lotus writes it: `{"/": "bafy…"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CidJson(pub Cid);

impl Serialize for CidJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Link {
            #[serde(rename = "/")]
            link: String,
        }
        Link { link: self.0.to_string() }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CidJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Link {
            #[serde(rename = "/")]
            link: String,
        }
        let link = Link::deserialize(d)?;
        link.link
            .parse()
            .map(CidJson)
            .map_err(|e| serde::de::Error::custom(format!("CID {:?}: {e}", link.link)))
    }
}

/// A tipset key: the CIDs of its blocks. Empty means "the head" to Lotus.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TipSetKey(pub Vec<CidJson>);

/// An amount of attoFIL, written as a decimal string. Every amount on
/// chain fits in 128 bits (the total supply is 2·10²⁷ attoFIL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttoFil(pub u128);

impl Serialize for AttoFil {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for AttoFil {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<u128>().map(AttoFil).map_err(|_| {
            serde::de::Error::custom(format!("amount {text:?} is not a non-negative attoFIL integer"))
        })
    }
}

impl std::fmt::Display for AttoFil {
    /// In FIL, with the attoFIL exact.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const ATTO: u128 = 1_000_000_000_000_000_000;
        let (whole, frac) = (self.0 / ATTO, self.0 % ATTO);
        if frac == 0 {
            write!(f, "{whole} FIL")
        } else {
            let frac = format!("{frac:018}");
            write!(f, "{whole}.{} FIL", frac.trim_end_matches('0'))
        }
    }
}

/// Bytes, written as standard base64 (Go's `[]byte`); `null` reads as empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Base64(pub Vec<u8>);

impl Serialize for Base64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Option::<String>::deserialize(d)?.unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Base64)
            .map_err(|e| serde::de::Error::custom(format!("base64: {e}")))
    }
}

/// An address, written as its string (`f01234`, `f3…`); the network prefix
/// (`f` or `t`) is read either way and written as `f`, which Lotus accepts
/// on every network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressJson(pub Address);

impl AddressJson {
    /// Parses `f0…`, `t0…`, `f3…` and the like.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let mainnet = match text.get(..1) {
            Some("t") => format!("f{}", &text[1..]),
            _ => text.to_string(),
        };
        mainnet.parse::<Address>().map(AddressJson).map_err(|e| format!("address {text:?}: {e}"))
    }

    /// The actor id of an `f0` address.
    pub fn id(&self) -> Option<u64> {
        self.0.id().ok()
    }
}

impl std::fmt::Display for AddressJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // fvm_shared prints with the network prefix it was built for (mainnet: `f`).
        write!(f, "{}", self.0)
    }
}

impl Serialize for AddressJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for AddressJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        AddressJson::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A bitfield as Lotus writes it: run lengths, first a run of zeros
/// (`[5, 1]` is bit 5; `[0]` and `[]` are empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BitFieldJson(pub Vec<u64>);

impl BitFieldJson {
    /// The set bits, ascending.
    pub fn bits(&self) -> Vec<u64> {
        self.0.clone()
    }
}

impl Serialize for BitFieldJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bits = self.0.clone();
        bits.sort_unstable();
        bits.dedup();
        let mut runs: Vec<u64> = Vec::new();
        let mut next = 0u64;
        for bit in bits {
            if bit == next && !runs.is_empty() {
                *runs.last_mut().expect("a run") += 1;
            } else {
                runs.push(bit - next);
                runs.push(1);
            }
            next = bit + 1;
        }
        if runs.is_empty() {
            runs.push(0);
        }
        runs.serialize(s)
    }
}

impl<'de> Deserialize<'de> for BitFieldJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let runs = Option::<Vec<u64>>::deserialize(d)?.unwrap_or_default();
        let mut bits = Vec::new();
        let mut at = 0u64;
        const MAX_BITS: usize = 1 << 20;
        for (i, run) in runs.iter().enumerate() {
            let end =
                at.checked_add(*run).ok_or_else(|| serde::de::Error::custom("bitfield runs overflow"))?;
            if i % 2 == 1 {
                if bits.len() as u64 + run > MAX_BITS as u64 {
                    return Err(serde::de::Error::custom(format!("bitfield of more than {MAX_BITS} bits")));
                }
                bits.extend(at..end);
            }
            at = end;
        }
        Ok(Self(bits))
    }
}

impl From<&BitField> for BitFieldJson {
    fn from(b: &BitField) -> Self {
        Self(b.iter().collect())
    }
}

/// A block's ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The VRF proof (its blake2b-256 is the epoch's ticket digest).
    #[serde(rename = "VRFProof")]
    pub vrf_proof: Base64,
}

/// A drand beacon entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeaconEntry {
    /// The drand round.
    #[serde(rename = "Round")]
    pub round: u64,
    /// Its signature.
    #[serde(rename = "Data")]
    pub data: Base64,
}

/// The parts of a block header kiln reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// The miner that made it.
    #[serde(rename = "Miner")]
    pub miner: AddressJson,
    /// Its ticket.
    #[serde(rename = "Ticket")]
    pub ticket: Option<Ticket>,
    /// Its beacon entries.
    #[serde(rename = "BeaconEntries", default)]
    pub beacon_entries: Option<Vec<BeaconEntry>>,
    /// Its height.
    #[serde(rename = "Height")]
    pub height: i64,
    /// Its timestamp (seconds since the Unix epoch).
    #[serde(rename = "Timestamp")]
    pub timestamp: u64,
}

/// A tipset: the blocks of one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipSet {
    /// The blocks' CIDs: the tipset's key.
    #[serde(rename = "Cids")]
    pub cids: Vec<CidJson>,
    /// The blocks.
    #[serde(rename = "Blocks")]
    pub blocks: Vec<BlockHeader>,
    /// The epoch.
    #[serde(rename = "Height")]
    pub height: i64,
}

impl TipSet {
    /// Its key.
    pub fn key(&self) -> TipSetKey {
        TipSetKey(self.cids.clone())
    }
}

/// An unsigned message, as Lotus writes `types.Message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageJson {
    /// Always 0.
    #[serde(rename = "Version")]
    pub version: u64,
    /// The receiver (the miner actor).
    #[serde(rename = "To")]
    pub to: AddressJson,
    /// The sender.
    #[serde(rename = "From")]
    pub from: AddressJson,
    /// The sender's nonce.
    #[serde(rename = "Nonce")]
    pub nonce: u64,
    /// The value sent (a deposit or pledge).
    #[serde(rename = "Value")]
    pub value: AttoFil,
    /// Gas limit.
    #[serde(rename = "GasLimit")]
    pub gas_limit: i64,
    /// The most paid per unit of gas.
    #[serde(rename = "GasFeeCap")]
    pub gas_fee_cap: AttoFil,
    /// The miner's tip per unit of gas.
    #[serde(rename = "GasPremium")]
    pub gas_premium: AttoFil,
    /// The method number.
    #[serde(rename = "Method")]
    pub method: u64,
    /// The CBOR parameters.
    #[serde(rename = "Params")]
    pub params: Base64,
    /// Its CID, as Lotus adds it to what it returns (ignored on input).
    #[serde(rename = "CID", default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<CidJson>,
}

/// A signature: its type (1 secp256k1, 2 BLS, 3 delegated) and bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureJson {
    /// The type.
    #[serde(rename = "Type")]
    pub kind: u8,
    /// The bytes.
    #[serde(rename = "Data")]
    pub data: Base64,
}

/// BLS signatures do not enter a signed message's CID.
pub const SIG_TYPE_BLS: u8 = 2;

/// A signed message, as `WalletSignMessage` returns and `MpoolPush` takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMessageJson {
    /// The message.
    #[serde(rename = "Message")]
    pub message: MessageJson,
    /// The sender's signature.
    #[serde(rename = "Signature")]
    pub signature: SignatureJson,
    /// Its CID, as Lotus adds it (ignored on input).
    #[serde(rename = "CID", default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<CidJson>,
}

/// `MessageSendSpec`: limits on what a message may cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSendSpec {
    /// The most the message may pay in fees.
    #[serde(rename = "MaxFee")]
    pub max_fee: AttoFil,
}

/// A message's receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptJson {
    /// 0, or why it failed.
    #[serde(rename = "ExitCode")]
    pub exit_code: i64,
    /// Its return value (CBOR).
    #[serde(rename = "Return")]
    pub return_value: Base64,
    /// Gas it used.
    #[serde(rename = "GasUsed")]
    pub gas_used: i64,
}

/// Where a message was executed and its receipt (`MsgLookup`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgLookup {
    /// The message executed (another CID if it was replaced).
    #[serde(rename = "Message")]
    pub message: CidJson,
    /// Its receipt.
    #[serde(rename = "Receipt")]
    pub receipt: ReceiptJson,
    /// The tipset that executed it.
    #[serde(rename = "TipSet")]
    pub tipset: TipSetKey,
    /// That tipset's epoch.
    #[serde(rename = "Height")]
    pub height: i64,
}

/// The parts of `MinerInfo` kiln reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinerInfo {
    /// The owner.
    #[serde(rename = "Owner")]
    pub owner: AddressJson,
    /// The worker.
    #[serde(rename = "Worker")]
    pub worker: AddressJson,
    /// Control addresses (may send PoSts).
    #[serde(rename = "ControlAddresses", default)]
    pub control_addresses: Option<Vec<AddressJson>>,
    /// The Window PoSt proof type.
    #[serde(rename = "WindowPoStProofType")]
    pub window_post_proof_type: i64,
    /// Bytes per sector.
    #[serde(rename = "SectorSize")]
    pub sector_size: u64,
    /// Sectors per Window PoSt partition.
    #[serde(rename = "WindowPoStPartitionSectors")]
    pub window_post_partition_sectors: u64,
}

/// `SectorPreCommitInfo` in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorPreCommitInfoJson {
    /// The seal proof type.
    #[serde(rename = "SealProof")]
    pub seal_proof: i64,
    /// The sector.
    #[serde(rename = "SectorNumber")]
    pub sector_number: u64,
    /// comm_r.
    #[serde(rename = "SealedCID")]
    pub sealed_cid: CidJson,
    /// The ticket epoch.
    #[serde(rename = "SealRandEpoch")]
    pub seal_rand_epoch: i64,
    /// Deals.
    #[serde(rename = "DealIDs", default)]
    pub deal_ids: Option<Vec<u64>>,
    /// Expiration.
    #[serde(rename = "Expiration")]
    pub expiration: i64,
    /// comm_d (`null` for zeros).
    #[serde(rename = "UnsealedCid", default)]
    pub unsealed_cid: Option<CidJson>,
}

/// A PreCommit on chain (`SectorPreCommitOnChainInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorPreCommitOnChainInfo {
    /// What was pre-committed.
    #[serde(rename = "Info")]
    pub info: SectorPreCommitInfoJson,
    /// The deposit held.
    #[serde(rename = "PreCommitDeposit")]
    pub deposit: AttoFil,
    /// The epoch it landed.
    #[serde(rename = "PreCommitEpoch")]
    pub epoch: i64,
}

/// A proving deadline (`dline.Info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineInfo {
    /// The epoch it was computed at.
    #[serde(rename = "CurrentEpoch")]
    pub current_epoch: i64,
    /// The proving period's first epoch.
    #[serde(rename = "PeriodStart")]
    pub period_start: i64,
    /// The deadline's index.
    #[serde(rename = "Index")]
    pub index: u64,
    /// First epoch of its challenge window.
    #[serde(rename = "Open")]
    pub open: i64,
    /// First epoch after it.
    #[serde(rename = "Close")]
    pub close: i64,
    /// The epoch of its challenge randomness.
    #[serde(rename = "Challenge")]
    pub challenge: i64,
    /// The last epoch a fault of it may be declared.
    #[serde(rename = "FaultCutoff")]
    pub fault_cutoff: i64,
    /// Deadlines per period.
    #[serde(rename = "WPoStPeriodDeadlines")]
    pub period_deadlines: u64,
    /// Epochs per period.
    #[serde(rename = "WPoStProvingPeriod")]
    pub proving_period: i64,
    /// Epochs per challenge window.
    #[serde(rename = "WPoStChallengeWindow")]
    pub challenge_window: i64,
    /// Epochs from challenge to open.
    #[serde(rename = "WPoStChallengeLookback")]
    pub challenge_lookback: i64,
    /// Epochs before open that faults must be declared by.
    #[serde(rename = "FaultDeclarationCutoff")]
    pub fault_declaration_cutoff: i64,
}

/// A partition of a deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// Every sector in it.
    #[serde(rename = "AllSectors")]
    pub all: BitFieldJson,
    /// Faulty sectors.
    #[serde(rename = "FaultySectors")]
    pub faulty: BitFieldJson,
    /// Sectors declared recovering.
    #[serde(rename = "RecoveringSectors")]
    pub recovering: BitFieldJson,
    /// Live sectors (not terminated).
    #[serde(rename = "LiveSectors")]
    pub live: BitFieldJson,
    /// Active sectors (live, not faulty, not unproven).
    #[serde(rename = "ActiveSectors")]
    pub active: BitFieldJson,
}

/// The parts of a proven sector (`SectorOnChainInfo`) kiln reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorOnChainInfo {
    /// The sector.
    #[serde(rename = "SectorNumber")]
    pub sector_number: u64,
    /// Its seal proof type.
    #[serde(rename = "SealProof")]
    pub seal_proof: i64,
    /// comm_r.
    #[serde(rename = "SealedCID")]
    pub sealed_cid: CidJson,
    /// The epoch it was activated.
    #[serde(rename = "Activation")]
    pub activation: i64,
    /// The epoch it expires.
    #[serde(rename = "Expiration")]
    pub expiration: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfields_are_run_lists_starting_with_zeros() {
        let read = |s: &str| serde_json::from_str::<BitFieldJson>(s).unwrap().bits();
        assert_eq!(read("[5,1]"), [5]);
        assert_eq!(read("[0]"), Vec::<u64>::new());
        assert_eq!(read("null"), Vec::<u64>::new());
        assert_eq!(read("[0,3,2,1]"), [0, 1, 2, 5]);
        let write = |bits: &[u64]| serde_json::to_string(&BitFieldJson(bits.to_vec())).unwrap();
        assert_eq!(write(&[]), "[0]");
        assert_eq!(write(&[5]), "[5,1]");
        assert_eq!(write(&[0, 1, 2, 5]), "[0,3,2,1]");
        assert!(serde_json::from_str::<BitFieldJson>("[0, 18446744073709551615, 1, 1]").is_err());
        assert!(serde_json::from_str::<BitFieldJson>("[0, 2000000]").is_err(), "too many bits");
    }

    #[test]
    fn amounts_addresses_bytes_and_cids_read_and_write_as_lotus_does() {
        let a: AttoFil = serde_json::from_str("\"1500000000000000000\"").unwrap();
        assert_eq!(a.to_string(), "1.5 FIL");
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"1500000000000000000\"");
        for bad in ["\"-1\"", "\"1.5\"", "12", "\"\""] {
            assert!(serde_json::from_str::<AttoFil>(bad).is_err(), "{bad}");
        }
        let addr: AddressJson = serde_json::from_str("\"t01234\"").unwrap();
        assert_eq!((addr.id(), addr.to_string()), (Some(1234), "f01234".to_string()));
        assert!(AddressJson::parse("f0x").is_err());
        let bytes: Base64 = serde_json::from_str("\"Ynl0ZSBhcnJheQ==\"").unwrap();
        assert_eq!(bytes.0, b"byte array");
        let cid = "bafy2bzacea3wsdh6y3a36tb3skempjoxqpuyompjbmfeyf34fi3uy6uue42v4";
        let c: CidJson = serde_json::from_value(serde_json::json!({ "/": cid })).unwrap();
        assert_eq!(serde_json::to_value(c).unwrap(), serde_json::json!({ "/": cid }));
        assert!(serde_json::from_value::<CidJson>(serde_json::json!({ "/": "nope" })).is_err());
    }
}

//! Message CIDs as Lotus computes them: blake2b-256 over the DAG-CBOR of
//! the message (fvm_shared's encoding), or of the signed message for every
//! signature but BLS (whose signatures are aggregated out of blocks). Kiln
//! records a signed message's CID before it pushes it, so it checks that
//! the CID the node reports is the one the bytes have.

use super::json::{MessageJson, SignedMessageJson, SIG_TYPE_BLS};
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use cid::multihash::Multihash;
use cid::Cid;
use fvm_ipld_encoding::{BytesSer, RawBytes, DAG_CBOR};
use fvm_shared::econ::TokenAmount;
use fvm_shared::message::Message;

/// The multihash code of blake2b-256.
const BLAKE2B_256: u64 = 0xb220;

/// A message that cannot be encoded.
#[derive(Debug, thiserror::Error)]
#[error("message to {to} (method {method}): {reason}")]
pub struct MessageError {
    /// Its receiver.
    pub to: String,
    /// Its method.
    pub method: u64,
    /// What is wrong.
    pub reason: String,
}

fn to_fvm(m: &MessageJson) -> Result<Message, MessageError> {
    let gas_limit = u64::try_from(m.gas_limit).map_err(|_| MessageError {
        to: m.to.to_string(),
        method: m.method,
        reason: format!("negative gas limit {}", m.gas_limit),
    })?;
    Ok(Message {
        version: m.version,
        from: m.from.0,
        to: m.to.0,
        sequence: m.nonce,
        value: TokenAmount::from_atto(m.value.0),
        method_num: m.method,
        params: RawBytes::new(m.params.0.clone()),
        gas_limit,
        gas_fee_cap: TokenAmount::from_atto(m.gas_fee_cap.0),
        gas_premium: TokenAmount::from_atto(m.gas_premium.0),
    })
}

fn cbor_cid(bytes: &[u8]) -> Cid {
    let digest: [u8; 32] = Blake2b::<U32>::digest(bytes).into();
    let hash = Multihash::<64>::wrap(BLAKE2B_256, &digest).expect("32 bytes fit a 64-byte multihash");
    Cid::new_v1(DAG_CBOR, hash)
}

fn encoding_error(m: &MessageJson, e: impl std::fmt::Display) -> MessageError {
    MessageError { to: m.to.to_string(), method: m.method, reason: format!("CBOR: {e}") }
}

/// The CID of an unsigned message.
pub fn message_cid(m: &MessageJson) -> Result<Cid, MessageError> {
    let bytes = fvm_ipld_encoding::to_vec(&to_fvm(m)?).map_err(|e| encoding_error(m, e))?;
    Ok(cbor_cid(&bytes))
}

/// The CID of a signed message: the message's own for a BLS signature, else
/// that of the CBOR pair (message, type byte ‖ signature).
pub fn signed_message_cid(sm: &SignedMessageJson) -> Result<Cid, MessageError> {
    if sm.signature.kind == SIG_TYPE_BLS {
        return message_cid(&sm.message);
    }
    let mut signature = vec![sm.signature.kind];
    signature.extend_from_slice(&sm.signature.data.0);
    let bytes = fvm_ipld_encoding::to_vec(&(to_fvm(&sm.message)?, BytesSer(&signature)))
        .map_err(|e| encoding_error(&sm.message, e))?;
    Ok(cbor_cid(&bytes))
}

#[cfg(test)]
mod tests {
    use super::super::json::{AddressJson, AttoFil, Base64, SignatureJson};
    use super::*;

    /// The example message of Lotus's API documentation and the CID Lotus
    /// computed for it there (`openrpc-full-v1.json`, `MpoolPushMessage`).
    fn lotus_example() -> MessageJson {
        let f01234 = AddressJson::parse("f01234").unwrap();
        MessageJson {
            version: 42,
            to: f01234,
            from: f01234,
            nonce: 42,
            value: AttoFil(0),
            gas_limit: 9,
            gas_fee_cap: AttoFil(0),
            gas_premium: AttoFil(0),
            method: 1,
            params: Base64(b"byte array".to_vec()),
            cid: None,
        }
    }

    #[test]
    fn the_cid_of_lotus_documented_message_is_the_one_lotus_computed() {
        let lotus = "bafy2bzacebbpdegvr3i4cosewthysg5xkxpqfn2wfcz6mv2hmoktwbdxkax4s";
        assert_eq!(message_cid(&lotus_example()).unwrap().to_string(), lotus);
        // Lotus's example signs it with BLS (type 2): the same CID.
        let bls = SignedMessageJson {
            message: lotus_example(),
            signature: SignatureJson { kind: 2, data: Base64(b"byte array".to_vec()) },
            cid: None,
        };
        assert_eq!(signed_message_cid(&bls).unwrap().to_string(), lotus);
        // A secp256k1 signature is part of what is hashed.
        let secp = SignedMessageJson { signature: SignatureJson { kind: 1, ..bls.signature.clone() }, ..bls };
        let secp_cid = signed_message_cid(&secp).unwrap();
        assert_ne!(secp_cid.to_string(), lotus);
        assert_eq!(secp_cid.codec(), DAG_CBOR);
        assert!(message_cid(&MessageJson { gas_limit: -1, ..lotus_example() }).is_err());
    }
}

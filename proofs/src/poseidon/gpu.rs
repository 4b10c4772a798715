//! Poseidon on the GPU: neptune's CUDA batch hasher, the one the reference
//! builds tree_c and tree_r_last with. Same constants as [`super::hash`], so
//! the same hashes (checked against the CPU on the device machine:
//! `kiln bench --compare-cpu`).

// neptune 11's batch hasher takes generic-array 0.14's arrays, deprecated in
// favour of 1.x, which neptune does not use.
#![allow(deprecated)]

use crate::error::{Error, Result};
use crate::gpu::GpuLease;
use blstrs::Scalar as Fr;
use generic_array::typenum::{U11, U2, U8};
use generic_array::{ArrayLength, GenericArray};
use neptune::batch_hasher::Batcher;
use neptune::{Arity, BatchHasher};
use tracing::info;

/// Preimages per GPU call: the reference's defaults for columns and tree rows.
pub const COLUMN_BATCH: usize = 400_000;
/// See [`COLUMN_BATCH`].
pub const TREE_BATCH: usize = 700_000;

/// Batch hashers for the arities SDR uses, on one leased device.
pub struct GpuHasher {
    _lease: GpuLease,
    device: &'static ec_gpu_gen::rust_gpu_tools::Device,
    a2: Option<Batcher<Fr, U2>>,
    a8: Option<Batcher<Fr, U8>>,
    a11: Option<Batcher<Fr, U11>>,
}

fn gpu_err(e: neptune::error::Error) -> Error {
    Error::Gpu(format!("neptune: {e}"))
}

impl GpuHasher {
    /// A hasher on the device `lease` holds (its first).
    pub fn new(lease: GpuLease) -> Result<Self> {
        let index = lease.indices[0];
        let device = crate::gpu::device(index).ok_or_else(|| Error::Gpu(format!("GPU {index} is gone")))?;
        info!(gpu = %device.name(), "tree hashing on the GPU");
        Ok(Self { _lease: lease, device, a2: None, a8: None, a11: None })
    }

    /// The device's name.
    pub fn device_name(&self) -> String {
        self.device.name()
    }

    /// Poseidon of each `arity`-element preimage of `inputs` into `out`, as
    /// [`super::hash_many`] does on the CPU.
    pub fn hash_many(&mut self, arity: usize, inputs: &[Fr], out: &mut [Fr]) -> Result<()> {
        assert_eq!(inputs.len(), out.len() * arity, "one preimage per output");
        let device = self.device;
        match arity {
            2 => run(batcher(&mut self.a2, device, COLUMN_BATCH)?, inputs, out),
            8 => run(batcher(&mut self.a8, device, TREE_BATCH)?, inputs, out),
            11 => run(batcher(&mut self.a11, device, COLUMN_BATCH)?, inputs, out),
            n => panic!("Poseidon arity {n} is not used by SDR (expected 2, 8 or 11)"),
        }
    }
}

fn batcher<'a, A: Arity<Fr>>(
    slot: &'a mut Option<Batcher<Fr, A>>,
    device: &'static ec_gpu_gen::rust_gpu_tools::Device,
    size: usize,
) -> Result<&'a mut Batcher<Fr, A>> {
    if slot.is_none() {
        *slot = Some(Batcher::new(device, size).map_err(gpu_err)?);
    }
    Ok(slot.as_mut().expect("set above"))
}

fn run<A>(batcher: &mut Batcher<Fr, A>, inputs: &[Fr], out: &mut [Fr]) -> Result<()>
where
    A: Arity<Fr> + ArrayLength<Fr>,
{
    let arity = A::to_usize();
    let max = batcher.max_batch_size();
    for (ins, outs) in inputs.chunks(max * arity).zip(out.chunks_mut(max)) {
        let preimages: Vec<GenericArray<Fr, A>> =
            ins.chunks_exact(arity).map(GenericArray::clone_from_slice).collect();
        let hashes = batcher.hash(&preimages).map_err(gpu_err)?;
        if hashes.len() != outs.len() {
            return Err(Error::Gpu(format!("{} hashes back for {} preimages", hashes.len(), outs.len())));
        }
        outs.copy_from_slice(&hashes);
    }
    Ok(())
}

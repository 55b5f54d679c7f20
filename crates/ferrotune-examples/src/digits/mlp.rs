//! A small multilayer perceptron for the digits dataset, in plain Rust, trained epoch by
//! epoch so a study can watch its learning curve and prune it.
//!
//! # The network
//! 64 standardized pixels → 1 to 3 hidden layers of equal width with ReLU → 10 logits →
//! softmax, trained on the mean cross-entropy. Inputs are z-scored with the mean and
//! (population) standard deviation of the *training* set only, as the other models are.
//! Hidden weights start He-normal (`σ = √(2/fan_in)`), the output layer LeCun-normal
//! (`σ = √(1/fan_in)`), biases at 0.
//!
//! # The optimizer: minibatch SGD with heavy-ball momentum
//! PyTorch's formulation, with L2 weight decay on every parameter (biases included):
//! `g ← ∇loss + λ·w`, `v ← μ·v + g`, `w ← w − η·v`. SGD with momentum rather than Adam
//! because it makes a better tuning problem: its effective step `η/(1 − μ)` couples the
//! learning rate and the momentum, so the landscape has a real ridge — too small and the
//! network underfits within the epoch cap, too large and it diverges — where Adam's
//! per-parameter normalization forgives most learning rates. It also keeps one buffer of
//! optimizer state instead of two, halving checkpoints and the update's memory traffic.
//! The last minibatch of an epoch is smaller when the batch size does not divide the
//! training set; its gradient is the mean over the rows it has.
//!
//! # Hyperparameters ([`MlpConfig`])
//!
//! | name | range searched | scale |
//! |-|-|-|
//! | `learning_rate` η | 1e-4 ..= 1 ([`LEARNING_RATE_RANGE`]) | log |
//! | `batch_size` | 8 ..= 256 ([`BATCH_SIZE_RANGE`]) | log, integer |
//! | `hidden_width` | 8 ..= 128 ([`HIDDEN_WIDTH_RANGE`]) | log, integer |
//! | `hidden_layers` | 1 ..= 3 ([`HIDDEN_LAYERS_RANGE`]) | integer |
//! | `weight_decay` λ | 1e-6 ..= 1e-2 ([`WEIGHT_DECAY_RANGE`]) | log |
//! | `momentum` μ | 0 ..= 0.99 ([`MOMENTUM_RANGE`]) | uniform |
//!
//! The ranges are wide on purpose, so the choice matters. On a two-thirds / one-third split
//! of digits, 27 epochs: at η = 1e-4 without momentum a network barely moves (error near
//! 90 %, 35 % with μ = 0.9); from an effective step `η/(1 − μ)` of about 1 on, training
//! turns unstable, wide networks first, and beyond about 3 networks diverge or their ReLUs
//! die (error 90 %); in between (effective steps of roughly 0.03 to 0.5) the error reaches
//! 2.5–4.5 %, i.e. about 96–97.5 % accuracy (97–98 % cross-validated in the main job).
//! Batch size trades gradient noise for steps per epoch, so it interacts with η as well.
//!
//! # Determinism
//! Everything is single-threaded and seeded: the initial weights come from a
//! [`TrialRng`] seeded by the trainer's seed, and epoch `e`'s shuffle from a stream derived
//! from (seed, `e`), so no random state has to be carried between epochs. The arithmetic is
//! `f32` in a fixed order (no reassociation: the dot products use eight fixed lanes), so the
//! same seed gives a bitwise identical learning curve (with the same build on the same
//! platform: `exp` and `ln` come from its math library), and a trainer restored from a
//! checkpoint ([`MlpState::to_bytes`], [`MlpTrainer::resume`]) continues exactly where the
//! saved one was.
//!
//! # Divergence
//! When a minibatch's loss is not finite, the trainer stops updating and is marked
//! diverged for good; [`MlpTrainer::error_on`] then reports [`DIVERGED_ERROR`] (0.9, the
//! error of guessing among ten balanced classes), never a panic or a NaN.
//!
//! # Speed
//! Each layer's weights are one row-major `inputs × outputs` matrix (row `i` holds input
//! `i`'s weights to every output), minibatches are copied into contiguous row-major
//! buffers, and every inner loop runs over a contiguous row: `y += Σ cₖ·xₖ` eight rows at a
//! time for the forward pass and the weight gradients, dot products for the backward pass,
//! all of which the compiler vectorizes. ReLU's zeros are skipped: an input that is 0
//! contributes nothing forward or to the weight gradient, and a unit that was off passes no
//! error back, which halves the work of the hidden layers. On one core of a 2-core AMD EPYC
//! (SSE2 only, the default x86-64 target) an epoch on 1,198 rows takes about 0.4 ms with two
//! hidden layers of 8, 0.9 ms of 32 and 4.4 ms of 128 (`cargo run --release -p
//! ferrotune-examples --example mlp_speed`). The kernels are kept out of line
//! (`#[inline(never)]`, called once per layer and minibatch) so profiles show where the
//! time goes.

use super::cv::Split;
use super::data::{derive_seed, Dataset, Standardizer, DIGITS_N_CLASSES, DIGITS_N_FEATURES};
use super::EvalError;
use ferrotune::rng::TrialRng;

/// The error [`MlpTrainer::error_on`] reports for a diverged network (its loss became NaN
/// or infinite): 0.9, the misclassification rate of chance on ten balanced classes, so a
/// diverged trial ranks with the worst but still compares with the others.
pub const DIVERGED_ERROR: f64 = 0.9;

/// The learning rate's search range (log scale).
pub const LEARNING_RATE_RANGE: (f64, f64) = (1e-4, 1.0);
/// The minibatch size's search range (log scale, integer).
pub const BATCH_SIZE_RANGE: (usize, usize) = (8, 256);
/// The hidden layers' width's search range (log scale, integer).
pub const HIDDEN_WIDTH_RANGE: (usize, usize) = (8, 128);
/// The number of hidden layers' search range (integer); also the largest number the
/// trainer accepts.
pub const HIDDEN_LAYERS_RANGE: (usize, usize) = (1, 3);
/// The L2 weight decay's search range (log scale).
pub const WEIGHT_DECAY_RANGE: (f64, f64) = (1e-6, 1e-2);
/// The momentum's search range (uniform).
pub const MOMENTUM_RANGE: (f64, f64) = (0.0, 0.99);

/// Simulated seconds per parameter per training sample of one epoch, for [`epoch_cost`]:
/// chosen so that a mid-size network (two hidden layers of 32, 3,466 parameters) costs
/// exactly 1 simulated second per epoch on 1,198 training samples (two thirds of digits).
pub const SIM_SECONDS_PER_PARAM_SAMPLE: f64 = 1.0 / (3466.0 * 1198.0);

/// The largest width and batch size [`MlpConfig::validate`] accepts: far beyond the search
/// ranges, and small enough that a corrupt checkpoint cannot ask for absurd allocations.
const MAX_SIZE: usize = 1 << 16;

/// Rows per forward pass when scoring a dataset.
const EVAL_CHUNK: usize = 256;

/// The hyperparameters of one MLP (see the [module documentation](self) for their meaning
/// and the ranges searched). Checked by [`MlpConfig::validate`] when a trainer is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlpConfig {
    /// SGD's step size η (> 0).
    pub learning_rate: f64,
    /// Rows per minibatch (≥ 1; capped at the training set's size).
    pub batch_size: usize,
    /// Units in each hidden layer (≥ 1).
    pub hidden_width: usize,
    /// Hidden layers, 1 to 3.
    pub hidden_layers: usize,
    /// L2 weight decay λ (≥ 0), added to every parameter's gradient.
    pub weight_decay: f64,
    /// Heavy-ball momentum μ, in `[0, 1)`.
    pub momentum: f64,
}

impl Default for MlpConfig {
    /// A hand-picked textbook starting point, the "default" the main job compares the search
    /// with: η = 0.01, batch 32, one hidden layer of 64, λ = 1e-4, μ = 0.9.
    fn default() -> Self {
        MlpConfig {
            learning_rate: 0.01,
            batch_size: 32,
            hidden_width: 64,
            hidden_layers: 1,
            weight_decay: 1e-4,
            momentum: 0.9,
        }
    }
}

impl MlpConfig {
    /// Checks every hyperparameter's hard bounds (wider than the search ranges).
    ///
    /// # Errors
    /// [`EvalError::InvalidParam`] naming the first offending hyperparameter.
    pub fn validate(&self) -> Result<(), EvalError> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(EvalError::param(
                "learning_rate",
                format!("{} is not a finite positive number", self.learning_rate),
            ));
        }
        if !(1..=MAX_SIZE).contains(&self.batch_size) {
            return Err(EvalError::param(
                "batch_size",
                format!("{} not in 1..={MAX_SIZE}", self.batch_size),
            ));
        }
        if !(1..=MAX_SIZE).contains(&self.hidden_width) {
            return Err(EvalError::param(
                "hidden_width",
                format!("{} not in 1..={MAX_SIZE}", self.hidden_width),
            ));
        }
        let (lo, hi) = HIDDEN_LAYERS_RANGE;
        if !(lo..=hi).contains(&self.hidden_layers) {
            return Err(EvalError::param(
                "hidden_layers",
                format!("{} not in {lo}..={hi}", self.hidden_layers),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(EvalError::param(
                "weight_decay",
                format!("{} is not a finite non-negative number", self.weight_decay),
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(EvalError::param(
                "momentum",
                format!("{} not in [0, 1)", self.momentum),
            ));
        }
        Ok(())
    }

    /// The number of trainable parameters (weights and biases) of the network.
    #[must_use]
    pub fn n_params(&self) -> usize {
        layout(self).last().map_or(0, |l| l.biases + l.outputs)
    }
}

/// Simulated seconds one training epoch of `config` on `n_train` samples takes:
/// parameters × samples × [`SIM_SECONDS_PER_PARAM_SAMPLE`] (a forward and backward pass
/// cost a few multiply-adds per parameter per sample), so a mid-size epoch on two thirds of
/// digits costs about 1 s. Deterministic, so simulated timelines repeat exactly.
#[must_use]
pub fn epoch_cost(config: &MlpConfig, n_train: usize) -> f64 {
    config.n_params() as f64 * n_train as f64 * SIM_SECONDS_PER_PARAM_SAMPLE
}

/// Where one layer lives in the flat parameter vector: `inputs × outputs` weights
/// (row-major, one row per input: its weights to every output) at `weights`, then
/// `outputs` biases at `biases`.
#[derive(Debug, Clone, Copy)]
struct Layer {
    inputs: usize,
    outputs: usize,
    weights: usize,
    biases: usize,
}

/// The layers of `config`'s network, input to output.
fn layout(config: &MlpConfig) -> Vec<Layer> {
    let mut dims = vec![DIGITS_N_FEATURES];
    dims.extend(std::iter::repeat_n(
        config.hidden_width,
        config.hidden_layers,
    ));
    dims.push(DIGITS_N_CLASSES);
    let mut offset = 0;
    dims.windows(2)
        .map(|d| {
            let layer = Layer {
                inputs: d[0],
                outputs: d[1],
                weights: offset,
                biases: offset + d[0] * d[1],
            };
            offset = layer.biases + d[1];
            layer
        })
        .collect()
}

/// The random stream of the initial weights (epoch `e`'s shuffle uses stream `e + 1`).
const INIT_STREAM: u64 = 0;

/// A trainer's complete state: configuration, seed, epochs run, weights and momentum
/// buffer. Saving it ([`MlpState::to_bytes`]) and resuming from it
/// ([`MlpTrainer::resume`]) continues training bitwise as if it had never stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpState {
    config: MlpConfig,
    seed: u64,
    epoch: u64,
    diverged: bool,
    fingerprint: u64,
    params: Vec<f32>,
    velocity: Vec<f32>,
}

/// The first bytes of every checkpoint.
const MAGIC: [u8; 8] = *b"FTMLPCKP";
/// The checkpoint format version [`MlpState::to_bytes`] writes and
/// [`MlpState::from_bytes`] reads.
pub const CHECKPOINT_VERSION: u32 = 1;
/// magic, version, 3 × f64, 3 × u32, seed, epoch, fingerprint, diverged (u8), n_params.
const HEADER_LEN: usize = 8 + 4 + 3 * 8 + 3 * 4 + 3 * 8 + 1 + 8;

/// Why bytes could not be read back as an [`MlpState`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The bytes do not start with the checkpoint magic `FTMLPCKP`.
    #[error("not an MLP checkpoint: it does not start with `FTMLPCKP`")]
    BadMagic,
    /// The checkpoint was written in a format version this build does not read.
    #[error("MLP checkpoint format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version in the checkpoint.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The bytes end before the checkpoint does.
    #[error("MLP checkpoint is truncated: {len} bytes, but {needed} are needed")]
    Truncated {
        /// The bytes given.
        len: usize,
        /// The bytes the checkpoint needs (as far as its header tells).
        needed: usize,
    },
    /// The bytes are damaged: a checksum mismatch, an invalid configuration, a parameter
    /// count that does not fit it, or bytes after the end.
    #[error("MLP checkpoint is corrupt: {0}")]
    Corrupt(String),
    /// The checkpoint was trained on another training set than the one it resumes on.
    #[error(
        "the MLP checkpoint was trained on another training set \
         (fingerprint {saved:016x}, this one has {given:016x})"
    )]
    TrainingSetMismatch {
        /// The training set fingerprint in the checkpoint.
        saved: u64,
        /// The fingerprint of the training set given to resume.
        given: u64,
    },
}

/// FNV-1a over bytes: the checkpoint checksum.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// Reads fixed-size little-endian fields off the front of a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], CheckpointError> {
        let end = self.at + N;
        let field = self
            .bytes
            .get(self.at..end)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(CheckpointError::Truncated {
                len: self.bytes.len(),
                needed: end.max(HEADER_LEN),
            })?;
        self.at = end;
        Ok(field)
    }
    fn u32(&mut self) -> Result<u32, CheckpointError> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, CheckpointError> {
        self.take().map(u64::from_le_bytes)
    }
    fn f64(&mut self) -> Result<f64, CheckpointError> {
        self.take().map(f64::from_le_bytes)
    }
    fn size(&mut self, name: &str) -> Result<usize, CheckpointError> {
        usize::try_from(self.u32()?)
            .map_err(|_| CheckpointError::Corrupt(format!("{name} does not fit this platform")))
    }
    fn f32s(&mut self, n: usize) -> Vec<f32> {
        let bytes = &self.bytes[self.at..self.at + 4 * n];
        self.at += 4 * n;
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

impl MlpState {
    /// The same network and momentum buffer, to be trained on with other optimizer settings
    /// (learning rate, weight decay, momentum): what Population Based Training does when a
    /// member copies another's checkpoint and explores its hyperparameters. The architecture
    /// (width, depth, batch size) cannot change, since the weights are laid out by it.
    ///
    /// # Errors
    /// As [`MlpConfig::validate`], naming the rejected setting.
    pub fn with_optimizer(
        mut self,
        learning_rate: f64,
        weight_decay: f64,
        momentum: f64,
    ) -> Result<MlpState, EvalError> {
        let config = MlpConfig {
            learning_rate,
            weight_decay,
            momentum,
            ..self.config
        };
        config.validate()?;
        self.config = config;
        Ok(self)
    }

    /// The hyperparameters.
    #[must_use]
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }
    /// The seed of the initial weights and of every epoch's shuffle.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Epochs trained so far.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// Whether training diverged (a minibatch loss was NaN or infinite); a diverged state
    /// trains no further.
    #[must_use]
    pub fn diverged(&self) -> bool {
        self.diverged
    }
    /// The parameters, layer by layer: each layer's `inputs × outputs` weights (row-major:
    /// row `i` holds input `i`'s weights to every output), then its biases.
    #[must_use]
    pub fn params(&self) -> &[f32] {
        &self.params
    }
    /// The momentum buffer, laid out as [`MlpState::params`].
    #[must_use]
    pub fn velocity(&self) -> &[f32] {
        &self.velocity
    }
    /// A hash of the standardized training set this state was trained on; resuming checks
    /// it, since the same state on other data would not continue the same curve.
    #[must_use]
    pub fn training_set_fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The state as bytes, little-endian: the magic `FTMLPCKP`, the format version
    /// ([`CHECKPOINT_VERSION`], u32), the configuration (learning rate, weight decay,
    /// momentum as f64; batch size, hidden width, hidden layers as u32), the seed, epoch and
    /// training-set fingerprint (u64), the diverged flag (u8), the parameter count (u64),
    /// the parameters and then the momentum buffer (f32 each), and an FNV-1a checksum of
    /// everything before it (u64).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.params.len();
        let mut out = Vec::with_capacity(HEADER_LEN + 8 * n + 8);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
        let c = &self.config;
        for v in [c.learning_rate, c.weight_decay, c.momentum] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [c.batch_size, c.hidden_width, c.hidden_layers] {
            // validate() caps all three at MAX_SIZE, so they fit.
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        for v in [self.seed, self.epoch, self.fingerprint] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(u8::from(self.diverged));
        out.extend_from_slice(&(n as u64).to_le_bytes());
        for v in self.params.iter().chain(&self.velocity) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let checksum = fnv1a(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    /// Reads a state written by [`MlpState::to_bytes`].
    ///
    /// # Errors
    /// [`CheckpointError::BadMagic`], [`CheckpointError::UnsupportedVersion`],
    /// [`CheckpointError::Truncated`] when the bytes end early, and
    /// [`CheckpointError::Corrupt`] for a checksum mismatch, trailing bytes, an invalid
    /// configuration or a parameter count that does not match it.
    pub fn from_bytes(bytes: &[u8]) -> Result<MlpState, CheckpointError> {
        let mut r = Reader { bytes, at: 0 };
        let magic_len = bytes.len().min(MAGIC.len());
        if bytes[..magic_len] != MAGIC[..magic_len] {
            return Err(CheckpointError::BadMagic);
        }
        r.take::<8>()?;
        let version = r.u32()?;
        if version != CHECKPOINT_VERSION {
            return Err(CheckpointError::UnsupportedVersion {
                found: version,
                supported: CHECKPOINT_VERSION,
            });
        }
        let learning_rate = r.f64()?;
        let weight_decay = r.f64()?;
        let momentum = r.f64()?;
        let batch_size = r.size("batch size")?;
        let hidden_width = r.size("hidden width")?;
        let hidden_layers = r.size("hidden layers")?;
        let seed = r.u64()?;
        let epoch = r.u64()?;
        let fingerprint = r.u64()?;
        let diverged = match r.take::<1>()?[0] {
            0 => false,
            1 => true,
            other => {
                return Err(CheckpointError::Corrupt(format!(
                    "diverged flag is {other}, not 0 or 1"
                )))
            }
        };
        let n = r.u64()?;
        let needed = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(8))
            .and_then(|b| b.checked_add(HEADER_LEN + 8))
            .ok_or_else(|| {
                CheckpointError::Corrupt(format!("parameter count {n} is impossibly large"))
            })?;
        if bytes.len() < needed {
            return Err(CheckpointError::Truncated {
                len: bytes.len(),
                needed,
            });
        }
        if bytes.len() > needed {
            return Err(CheckpointError::Corrupt(format!(
                "{} bytes after the end of the checkpoint",
                bytes.len() - needed
            )));
        }
        let body = &bytes[..needed - 8];
        let stored = u64::from_le_bytes(
            bytes[needed - 8..]
                .try_into()
                .map_err(|_| CheckpointError::Corrupt("checksum missing".into()))?,
        );
        if fnv1a(body) != stored {
            return Err(CheckpointError::Corrupt("checksum mismatch".into()));
        }
        let config = MlpConfig {
            learning_rate,
            batch_size,
            hidden_width,
            hidden_layers,
            weight_decay,
            momentum,
        };
        config
            .validate()
            .map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
        let n = (needed - HEADER_LEN - 8) / 8;
        if n != config.n_params() {
            return Err(CheckpointError::Corrupt(format!(
                "{n} parameters, but the configuration has {}",
                config.n_params()
            )));
        }
        let params = r.f32s(n);
        let velocity = r.f32s(n);
        Ok(MlpState {
            config,
            seed,
            epoch,
            diverged,
            fingerprint,
            params,
            velocity,
        })
    }
}

/// A hash of standardized features and labels (FNV-1a over 32-bit words).
fn fingerprint(x: &[f32], y: &[u32]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for w in x.iter().map(|v| v.to_bits()).chain(y.iter().copied()) {
        h ^= u64::from(w);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// `Σ a[i]·b[i]` over equal-length slices, in eight fixed lanes (so it vectorizes without
/// reassociating: the result is the same on every run and at every optimization level).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
        + tail
}

/// `y += a·x` over equal-length slices.
#[inline]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `y += Σₖ cₖ·xₖ` over four rows `xₖ` of `y`'s length, added in order `k = 0..4` (so the
/// result is the one four single updates would give): one pass over `y` instead of four.
#[inline]
fn axpy4(y: &mut [f32], c: [f32; 4], x: [&[f32]; 4]) {
    let n = y.len();
    let [x0, x1, x2, x3] = x;
    let (x0, x1, x2, x3) = (&x0[..n], &x1[..n], &x2[..n], &x3[..n]);
    for i in 0..n {
        y[i] = (((y[i] + c[0] * x0[i]) + c[1] * x1[i]) + c[2] * x2[i]) + c[3] * x3[i];
    }
}

/// As [`axpy4`] with eight rows.
#[inline]
fn axpy8(y: &mut [f32], c: [f32; 8], x: [&[f32]; 8]) {
    let n = y.len();
    let [x0, x1, x2, x3, x4, x5, x6, x7] = x;
    let (x0, x1, x2, x3) = (&x0[..n], &x1[..n], &x2[..n], &x3[..n]);
    let (x4, x5, x6, x7) = (&x4[..n], &x5[..n], &x6[..n], &x7[..n]);
    for i in 0..n {
        y[i] = (((((((y[i] + c[0] * x0[i]) + c[1] * x1[i]) + c[2] * x2[i]) + c[3] * x3[i])
            + c[4] * x4[i])
            + c[5] * x5[i])
            + c[6] * x6[i])
            + c[7] * x7[i];
    }
}

/// `y += Σ c·m[r]` over the `(c, r)` terms (rows `r` of the row-major matrix `m`, `y.len()`
/// wide), in order, eight terms per pass.
fn accumulate(y: &mut [f32], terms: &[(f32, usize)], m: &[f32]) {
    let width = y.len();
    let row = |r: usize| &m[r * width..(r + 1) * width];
    let mut octs = terms.chunks_exact(8);
    for q in &mut octs {
        axpy8(
            y,
            [
                q[0].0, q[1].0, q[2].0, q[3].0, q[4].0, q[5].0, q[6].0, q[7].0,
            ],
            [
                row(q[0].1),
                row(q[1].1),
                row(q[2].1),
                row(q[3].1),
                row(q[4].1),
                row(q[5].1),
                row(q[6].1),
                row(q[7].1),
            ],
        );
    }
    let mut quads = octs.remainder().chunks_exact(4);
    for q in &mut quads {
        axpy4(
            y,
            [q[0].0, q[1].0, q[2].0, q[3].0],
            [row(q[0].1), row(q[1].1), row(q[2].1), row(q[3].1)],
        );
    }
    for &(c, r) in quads.remainder() {
        axpy(y, c, row(r));
    }
}

/// Collects the nonzero `values` with their positions at the front of `terms` (grown to
/// fit) and returns how many there are. Branch-free: every value is written, and the write
/// position only advances past nonzero ones (ReLU's zeros come in no predictable order).
fn nonzeros(values: impl ExactSizeIterator<Item = f32>, terms: &mut Vec<(f32, usize)>) -> usize {
    if terms.len() < values.len() {
        terms.resize(values.len(), (0.0, 0));
    }
    let mut n = 0;
    for (i, v) in values.enumerate() {
        terms[n] = (v, i);
        n += usize::from(v != 0.0);
    }
    n
}

/// Runs the network forward on `rows` rows held in `acts[0]`: `acts[l + 1]` receives layer
/// `l`'s outputs (ReLU-activated for hidden layers, raw logits for the last). Inputs that
/// are 0 are skipped; `terms` is scratch space.
#[inline(never)]
fn forward(
    params: &[f32],
    layers: &[Layer],
    acts: &mut [Vec<f32>],
    rows: usize,
    terms: &mut Vec<(f32, usize)>,
) {
    let last = layers.len() - 1;
    for (l, layer) in layers.iter().enumerate() {
        let (inp, out) = (layer.inputs, layer.outputs);
        let w = &params[layer.weights..layer.biases];
        let bias = &params[layer.biases..layer.biases + out];
        let (before, after) = acts.split_at_mut(l + 1);
        let a_in = &before[l][..rows * inp];
        let z = &mut after[0][..rows * out];
        for (a, z) in a_in.chunks_exact(inp).zip(z.chunks_exact_mut(out)) {
            z.copy_from_slice(bias);
            let n = nonzeros(a.iter().copied(), terms);
            accumulate(z, &terms[..n], w);
            if l < last {
                for zj in z.iter_mut() {
                    *zj = zj.max(0.0);
                }
            }
        }
    }
}

/// The softmax of each row of `logits` (10 wide, shifted by the row's maximum so `exp`
/// cannot overflow) minus the one-hot label, divided by the number of rows, into `delta`
/// (the gradient of the mean cross-entropy with respect to the logits); returns the summed
/// cross-entropy (not finite when the logits are not).
#[inline(never)]
fn softmax_cross_entropy(
    logits: &[f32],
    labels: impl Iterator<Item = usize>,
    delta: &mut [f32],
) -> f64 {
    const C: usize = DIGITS_N_CLASSES;
    let scale = 1.0 / (logits.len() / C) as f32;
    let mut loss = 0.0f64;
    for ((z, d), label) in logits
        .chunks_exact(C)
        .zip(delta.chunks_exact_mut(C))
        .zip(labels)
    {
        let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0.0f32;
        for (dk, &zk) in d.iter_mut().zip(z) {
            *dk = (zk - max).exp();
            sum += *dk;
        }
        let inv = 1.0 / sum;
        for dk in d.iter_mut() {
            *dk *= inv * scale;
        }
        d[label] -= scale;
        loss += f64::from(sum.ln() - (z[label] - max));
    }
    loss
}

/// One layer's gradients from its inputs `a_in` (`rows × inputs`) and its output errors
/// `delta` (`rows × outputs`): weight row `i` (`gw`, `inputs × outputs`) is the sum over rows
/// of input `i` times the row's errors (rows where the input is 0 skipped), the biases
/// (`gb`) the sum of the errors. `terms` is scratch space.
#[inline(never)]
fn gradients(
    a_in: &[f32],
    delta: &[f32],
    gw: &mut [f32],
    gb: &mut [f32],
    terms: &mut Vec<(f32, usize)>,
) {
    let out = gb.len();
    let inp = gw.len() / out;
    gb.fill(0.0);
    for d in delta.chunks_exact(out) {
        axpy(gb, 1.0, d);
    }
    for (i, gw_i) in gw.chunks_exact_mut(out).enumerate() {
        gw_i.fill(0.0);
        let n = nonzeros(a_in.iter().skip(i).step_by(inp).copied(), terms);
        accumulate(gw_i, &terms[..n], delta);
    }
}

/// The errors of a layer's `inp` inputs from its output errors `delta` through its weights
/// `w` (`inputs × outputs`), into `prev` (`rows × inputs`): zero where the ReLU that produced
/// the input was off (`a_in` ≤ 0), else the dot product of the row's errors with the
/// input's weight row. `terms` is scratch space.
#[inline(never)]
fn back_errors(
    w: &[f32],
    a_in: &[f32],
    delta: &[f32],
    prev: &mut [f32],
    inp: usize,
    terms: &mut Vec<(f32, usize)>,
) {
    let out = w.len() / inp;
    for ((p, d), a) in prev
        .chunks_exact_mut(inp)
        .zip(delta.chunks_exact(out))
        .zip(a_in.chunks_exact(inp))
    {
        p.fill(0.0);
        // ReLU outputs are never negative: nonzero means on.
        let n = nonzeros(a.iter().copied(), terms);
        for &(_, i) in &terms[..n] {
            p[i] = dot(d, &w[i * out..(i + 1) * out]);
        }
    }
}

/// SGD with heavy-ball momentum and L2 weight decay, PyTorch's form:
/// `v ← μ·v + (g + λ·w)`, `w ← w − η·v`.
#[inline(never)]
fn sgd_update(params: &mut [f32], velocity: &mut [f32], grad: &[f32], lr: f32, mu: f32, wd: f32) {
    for ((w, v), g) in params.iter_mut().zip(velocity.iter_mut()).zip(grad) {
        *v = mu * *v + (g + wd * *w);
        *w -= lr * *v;
    }
}

/// The training set and the network being trained on it, with its optimizer state and
/// scratch buffers. Build one with [`MlpTrainer::new`], call [`MlpTrainer::train_epoch`]
/// once per epoch and score it with [`MlpTrainer::error_on`]; [`MlpTrainer::state`] is the
/// checkpoint and [`MlpTrainer::resume`] continues from one.
#[derive(Debug, Clone)]
pub struct MlpTrainer {
    state: MlpState,
    layers: Vec<Layer>,
    scaler: Standardizer,
    /// Standardized training features, row-major (`n × 64`).
    x: Vec<f32>,
    y: Vec<u32>,
    /// This epoch's visiting order.
    order: Vec<usize>,
    grad: Vec<f32>,
    /// `acts[0]`: the minibatch's inputs; `acts[l + 1]`: layer `l`'s outputs.
    acts: Vec<Vec<f32>>,
    delta: Vec<f32>,
    delta_prev: Vec<f32>,
    /// Nonzero `(value, index)` pairs, scratch for [`accumulate`].
    terms: Vec<(f32, usize)>,
}

impl MlpTrainer {
    /// A freshly initialized network of `config` on `train`, seeded by `seed` (initial
    /// weights and every epoch's shuffle).
    ///
    /// # Errors
    /// [`EvalError::InvalidParam`] for an invalid configuration, [`EvalError::InvalidData`]
    /// if `train` does not have 64 features or has a label outside 0..=9.
    pub fn new(config: MlpConfig, train: &Dataset, seed: u64) -> Result<Self, EvalError> {
        config.validate()?;
        let layers = layout(&config);
        let mut rng = TrialRng::from_seed(derive_seed(seed, INIT_STREAM));
        let mut params = vec![0.0f32; config.n_params()];
        for (l, layer) in layers.iter().enumerate() {
            let gain = if l + 1 < layers.len() { 2.0 } else { 1.0 };
            let sd = (gain / layer.inputs as f64).sqrt();
            for w in &mut params[layer.weights..layer.biases] {
                *w = (sd * rng.normal()) as f32;
            }
        }
        let velocity = vec![0.0; params.len()];
        let state = MlpState {
            config,
            seed,
            epoch: 0,
            diverged: false,
            fingerprint: 0,
            params,
            velocity,
        };
        Self::build(state, train)
    }

    /// A trainer that continues from `state` (a checkpoint) on `train`, which must be the
    /// training set the state was trained on: training on from here gives bitwise the
    /// curve an uninterrupted trainer would have.
    ///
    /// # Errors
    /// As [`MlpTrainer::new`], and [`CheckpointError::TrainingSetMismatch`] (inside
    /// [`EvalError::Checkpoint`]) when `train` is not the state's training set.
    pub fn resume(train: &Dataset, state: MlpState) -> Result<Self, EvalError> {
        state.config.validate()?;
        let saved = state.fingerprint;
        let trainer = Self::build(state, train)?;
        let given = trainer.state.fingerprint;
        if saved != given {
            return Err(CheckpointError::TrainingSetMismatch { saved, given }.into());
        }
        Ok(trainer)
    }

    /// Standardizes `train`, allocates the buffers and stamps the state with the training
    /// set's fingerprint.
    fn build(mut state: MlpState, train: &Dataset) -> Result<Self, EvalError> {
        check_shape(train)?;
        let n = train.n_samples();
        let all: Vec<usize> = (0..n).collect();
        let scaler = Standardizer::fit(train.x(), &all);
        let mut x = vec![0.0f32; n * DIGITS_N_FEATURES];
        for (row, out) in train.x().iter().zip(x.chunks_exact_mut(DIGITS_N_FEATURES)) {
            scaler.standardize_row(row, out);
        }
        let y = train.y().to_vec();
        state.fingerprint = fingerprint(&x, &y);
        let layers = layout(&state.config);
        let batch = state.config.batch_size.min(n);
        let widest = layers
            .iter()
            .map(|l| l.inputs.max(l.outputs))
            .max()
            .unwrap_or(DIGITS_N_FEATURES);
        let mut acts = vec![vec![0.0; batch * DIGITS_N_FEATURES]];
        acts.extend(layers.iter().map(|l| vec![0.0; batch * l.outputs]));
        Ok(MlpTrainer {
            grad: vec![0.0; state.params.len()],
            state,
            layers,
            scaler,
            x,
            y,
            order: Vec::with_capacity(n),
            acts,
            delta: vec![0.0; batch * widest],
            delta_prev: vec![0.0; batch * widest],
            terms: Vec::with_capacity(batch.max(widest)),
        })
    }

    /// The state: configuration, seed, epochs, weights and momentum; save it with
    /// [`MlpState::to_bytes`].
    #[must_use]
    pub fn state(&self) -> &MlpState {
        &self.state
    }

    /// The hyperparameters.
    #[must_use]
    pub fn config(&self) -> &MlpConfig {
        &self.state.config
    }

    /// Epochs trained so far (a diverged trainer counts them on without training).
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.state.epoch
    }

    /// Whether training diverged; see [`DIVERGED_ERROR`].
    #[must_use]
    pub fn diverged(&self) -> bool {
        self.state.diverged
    }

    /// Trains one epoch: shuffles the training set with this epoch's stream and takes one
    /// SGD step per minibatch. Returns the epoch's mean training cross-entropy, or NaN when
    /// the network has diverged (now or before; it then stays as it was).
    pub fn train_epoch(&mut self) -> f64 {
        let epoch = self.state.epoch;
        self.state.epoch += 1;
        if self.state.diverged {
            return f64::NAN;
        }
        let n = self.y.len();
        self.order.clear();
        self.order.extend(0..n);
        let mut rng = TrialRng::from_seed(derive_seed(self.state.seed, epoch + 1));
        for i in (1..n).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            self.order.swap(i, j);
        }
        let batch = self.state.config.batch_size.min(n);
        let mut total = 0.0f64;
        let mut start = 0;
        while start < n {
            let end = (start + batch).min(n);
            let loss = self.step(start, end);
            if !loss.is_finite() {
                self.state.diverged = true;
                return f64::NAN;
            }
            total += loss;
            start = end;
        }
        total / n as f64
    }

    /// One SGD step on the rows `order[start..end]`; returns their summed loss (not finite:
    /// nothing was updated).
    fn step(&mut self, start: usize, end: usize) -> f64 {
        const D: usize = DIGITS_N_FEATURES;
        const C: usize = DIGITS_N_CLASSES;
        let rows = end - start;
        for (dst, &r) in self.acts[0]
            .chunks_exact_mut(D)
            .zip(&self.order[start..end])
        {
            dst.copy_from_slice(&self.x[r * D..(r + 1) * D]);
        }
        forward(
            &self.state.params,
            &self.layers,
            &mut self.acts,
            rows,
            &mut self.terms,
        );

        let labels = self.order[start..end].iter().map(|&r| self.y[r] as usize);
        let loss = softmax_cross_entropy(
            &self.acts[self.layers.len()][..rows * C],
            labels,
            &mut self.delta[..rows * C],
        );
        if !loss.is_finite() {
            return loss;
        }

        // Backward: gradients into `grad`, errors propagated through `delta`.
        for l in (0..self.layers.len()).rev() {
            let layer = self.layers[l];
            let (inp, out) = (layer.inputs, layer.outputs);
            let a_in = &self.acts[l][..rows * inp];
            let delta = &self.delta[..rows * out];
            let (gw, gb) = self.grad[layer.weights..layer.biases + out]
                .split_at_mut(layer.biases - layer.weights);
            gradients(a_in, delta, gw, gb, &mut self.terms);
            if l == 0 {
                break;
            }
            back_errors(
                &self.state.params[layer.weights..layer.biases],
                a_in,
                delta,
                &mut self.delta_prev[..rows * inp],
                inp,
                &mut self.terms,
            );
            std::mem::swap(&mut self.delta, &mut self.delta_prev);
        }

        let c = &self.state.config;
        sgd_update(
            &mut self.state.params,
            &mut self.state.velocity,
            &self.grad,
            c.learning_rate as f32,
            c.momentum as f32,
            c.weight_decay as f32,
        );
        loss
    }

    /// The misclassification rate on `data` (standardized with the training set's
    /// statistics; the class is the largest logit, ties to the lower label). A diverged
    /// network, or one whose logits are not finite, scores [`DIVERGED_ERROR`].
    ///
    /// # Errors
    /// [`EvalError::InvalidData`] if `data` does not have 64 features.
    pub fn error_on(&self, data: &Dataset) -> Result<f64, EvalError> {
        const D: usize = DIGITS_N_FEATURES;
        const C: usize = DIGITS_N_CLASSES;
        if data.n_features() != D {
            return Err(EvalError::InvalidData(format!(
                "the MLP takes {D} features, the dataset has {}",
                data.n_features()
            )));
        }
        if self.state.diverged {
            return Ok(DIVERGED_ERROR);
        }
        let chunk = EVAL_CHUNK.min(data.n_samples());
        let mut acts = vec![vec![0.0f32; chunk * D]];
        acts.extend(self.layers.iter().map(|l| vec![0.0; chunk * l.outputs]));
        let mut terms = Vec::with_capacity(chunk.max(D));
        let mut wrong = 0usize;
        for (rows, labels) in data.x().chunks(chunk).zip(data.y().chunks(chunk)) {
            for (row, out) in rows.iter().zip(acts[0].chunks_exact_mut(D)) {
                self.scaler.standardize_row(row, out);
            }
            forward(
                &self.state.params,
                &self.layers,
                &mut acts,
                rows.len(),
                &mut terms,
            );
            for (z, &label) in acts[self.layers.len()].chunks_exact(C).zip(labels) {
                if z.iter().any(|v| !v.is_finite()) {
                    return Ok(DIVERGED_ERROR);
                }
                let mut best = 0;
                for (k, &v) in z.iter().enumerate() {
                    if v > z[best] {
                        best = k;
                    }
                }
                if best != label as usize {
                    wrong += 1;
                }
            }
        }
        Ok(wrong as f64 / data.n_samples() as f64)
    }
}

/// Checks that `data` fits the network: 64 features, labels 0..=9.
fn check_shape(data: &Dataset) -> Result<(), EvalError> {
    if data.n_features() != DIGITS_N_FEATURES {
        return Err(EvalError::InvalidData(format!(
            "the MLP takes {DIGITS_N_FEATURES} features, the dataset has {}",
            data.n_features()
        )));
    }
    if let Some(bad) = data.y().iter().find(|&&y| y as usize >= DIGITS_N_CLASSES) {
        return Err(EvalError::InvalidData(format!(
            "label {bad} is not a digit class (0..={})",
            DIGITS_N_CLASSES - 1
        )));
    }
    Ok(())
}

/// The validation error after each of `epochs` epochs of `config` trained on `train` with
/// `seed`: the learning curve, element `e` after `e + 1` epochs.
///
/// # Errors
/// As [`MlpTrainer::new`] and [`MlpTrainer::error_on`].
pub fn validation_curve(
    config: MlpConfig,
    train: &Dataset,
    valid: &Dataset,
    seed: u64,
    epochs: u64,
) -> Result<Vec<f64>, EvalError> {
    let mut trainer = MlpTrainer::new(config, train, seed)?;
    (0..epochs)
        .map(|_| {
            trainer.train_epoch();
            trainer.error_on(valid)
        })
        .collect()
}

/// Cross-validated MLP training in lockstep: one trainer per split, all advanced one epoch
/// at a time, so the mean held-out error can be reported (and the run pruned) after every
/// epoch. Fold `k` trains with seed `derive(seed, k)`, as [`crate::digits::cv_scores`]
/// seeds its models.
#[derive(Debug, Clone)]
pub struct MlpCrossValidation<'a> {
    splits: &'a [Split],
    trainers: Vec<MlpTrainer>,
}

impl<'a> MlpCrossValidation<'a> {
    /// Fresh networks of `config`, one per split (see
    /// [`stratified_splits`](crate::digits::stratified_splits)).
    ///
    /// # Errors
    /// As [`MlpTrainer::new`]; [`EvalError::InvalidFolds`] when `splits` is empty.
    pub fn new(splits: &'a [Split], config: MlpConfig, seed: u64) -> Result<Self, EvalError> {
        if splits.is_empty() {
            return Err(EvalError::InvalidFolds("no splits to train on".into()));
        }
        let trainers = splits
            .iter()
            .enumerate()
            .map(|(k, s)| MlpTrainer::new(config, &s.train, derive_seed(seed, k as u64)))
            .collect::<Result<_, _>>()?;
        Ok(MlpCrossValidation { splits, trainers })
    }

    /// Networks that continue from `states` (one per split, in split order, e.g. read back
    /// from [`MlpState::from_bytes`]): training on gives bitwise the curve of an
    /// uninterrupted run.
    ///
    /// # Errors
    /// [`EvalError::InvalidFolds`] when the number of states is not the number of splits;
    /// as [`MlpTrainer::resume`] otherwise.
    pub fn resume(splits: &'a [Split], states: Vec<MlpState>) -> Result<Self, EvalError> {
        if states.len() != splits.len() || splits.is_empty() {
            return Err(EvalError::InvalidFolds(format!(
                "{} saved fold state(s) for {} split(s); resume with the splits the \
                 checkpoint was trained on",
                states.len(),
                splits.len()
            )));
        }
        let trainers = splits
            .iter()
            .zip(states)
            .map(|(s, state)| MlpTrainer::resume(&s.train, state))
            .collect::<Result<_, _>>()?;
        Ok(MlpCrossValidation { splits, trainers })
    }

    /// Trains every fold's network one more epoch and returns the mean held-out error over
    /// the folds.
    ///
    /// # Errors
    /// As [`MlpTrainer::error_on`].
    pub fn train_epoch(&mut self) -> Result<f64, EvalError> {
        let mut sum = 0.0;
        for (trainer, split) in self.trainers.iter_mut().zip(self.splits) {
            trainer.train_epoch();
            sum += trainer.error_on(&split.test)?;
        }
        Ok(sum / self.trainers.len() as f64)
    }

    /// Epochs trained so far.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.trainers.first().map_or(0, MlpTrainer::epoch)
    }

    /// The trainers, one per split.
    #[must_use]
    pub fn trainers(&self) -> &[MlpTrainer] {
        &self.trainers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digits::{load_digits, stratified_splits};

    /// A two-thirds / one-third stratified split of a 40-per-class subsample (267 training
    /// rows): small enough for debug builds.
    fn small_split() -> Split {
        let data = load_digits().stratified_subsample(40, 5).unwrap();
        stratified_splits(&data, 3, 0).unwrap().swap_remove(0)
    }

    fn config(learning_rate: f64, momentum: f64, hidden_width: usize) -> MlpConfig {
        MlpConfig {
            learning_rate,
            batch_size: 16,
            hidden_width,
            hidden_layers: 2,
            weight_decay: 1e-4,
            momentum,
        }
    }

    /// Trains `epochs` epochs and returns (validation errors, training losses) as bits.
    fn curve(trainer: &mut MlpTrainer, valid: &Dataset, epochs: u64) -> Vec<(u64, u64)> {
        (0..epochs)
            .map(|_| {
                let loss = trainer.train_epoch();
                (trainer.error_on(valid).unwrap().to_bits(), loss.to_bits())
            })
            .collect()
    }

    #[test]
    fn parameter_count_and_cost() {
        let mid = config(0.01, 0.9, 32);
        assert_eq!(mid.n_params(), 64 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10);
        assert_eq!(mid.n_params(), 3466);
        assert!((epoch_cost(&mid, 1198) - 1.0).abs() < 1e-12);
        let wide = config(0.01, 0.9, 128);
        let ratio = epoch_cost(&wide, 600) / epoch_cost(&mid, 1198);
        let expected = (wide.n_params() as f64 * 600.0) / (3466.0 * 1198.0);
        assert!((ratio - expected).abs() < 1e-12);
    }

    #[test]
    fn same_seed_same_curve_bitwise() {
        let split = small_split();
        let c = config(0.05, 0.9, 16);
        let mut a = MlpTrainer::new(c, &split.train, 7).unwrap();
        let mut b = MlpTrainer::new(c, &split.train, 7).unwrap();
        let mut other = MlpTrainer::new(c, &split.train, 8).unwrap();
        let ca = curve(&mut a, &split.test, 4);
        assert_eq!(ca, curve(&mut b, &split.test, 4));
        assert_eq!(a.state().to_bytes(), b.state().to_bytes());
        assert_ne!(
            ca,
            curve(&mut other, &split.test, 4),
            "another seed, another curve"
        );
    }

    #[test]
    fn checkpoint_resume_continues_bitwise() {
        let split = small_split();
        let c = config(0.05, 0.9, 16);
        let mut straight = MlpTrainer::new(c, &split.train, 3).unwrap();
        let full = curve(&mut straight, &split.test, 7);

        let mut first = MlpTrainer::new(c, &split.train, 3).unwrap();
        let mut resumed_curve = curve(&mut first, &split.test, 3);
        let bytes = first.state().to_bytes();
        drop(first);
        let state = MlpState::from_bytes(&bytes).unwrap();
        assert_eq!(state.epoch(), 3);
        let mut resumed = MlpTrainer::resume(&split.train, state).unwrap();
        resumed_curve.extend(curve(&mut resumed, &split.test, 4));
        assert_eq!(resumed_curve, full);
        assert_eq!(resumed.state().to_bytes(), straight.state().to_bytes());
        assert_eq!(resumed.state(), straight.state());
    }

    #[test]
    fn corrupt_checkpoints_are_errors_not_panics() {
        let split = small_split();
        let mut trainer = MlpTrainer::new(config(0.05, 0.9, 8), &split.train, 1).unwrap();
        trainer.train_epoch();
        let bytes = trainer.state().to_bytes();
        assert_eq!(
            bytes.len(),
            HEADER_LEN + 8 * trainer.config().n_params() + 8
        );

        for len in 0..bytes.len() {
            match MlpState::from_bytes(&bytes[..len]) {
                Err(CheckpointError::Truncated { len: l, needed }) => {
                    assert_eq!(l, len);
                    assert!(needed > len);
                }
                other => panic!("{len} bytes: {other:?}"),
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            MlpState::from_bytes(&longer),
            Err(CheckpointError::Corrupt(_))
        ));
        // Any flipped bit is caught (most by the checksum, the header's by its checks).
        for at in (0..bytes.len()).step_by(3) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(MlpState::from_bytes(&bad).is_err(), "flip at {at}");
        }
        let mut bad = bytes.clone();
        bad[HEADER_LEN + 5] ^= 1;
        let err = MlpState::from_bytes(&bad).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        assert!(matches!(
            MlpState::from_bytes(b"PNG\0whatever and more"),
            Err(CheckpointError::BadMagic)
        ));
        let mut future = bytes.clone();
        future[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            MlpState::from_bytes(&future),
            Err(CheckpointError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        ));

        // A state resumes only on the training set it was trained on.
        let state = MlpState::from_bytes(&bytes).unwrap();
        let err = MlpTrainer::resume(&split.test, state).unwrap_err();
        assert!(
            matches!(
                err,
                EvalError::Checkpoint(CheckpointError::TrainingSetMismatch { .. })
            ),
            "{err}"
        );
    }

    /// On the real split (1,198 training rows), the textbook default learns digits within
    /// the epoch cap and its curve goes down; a crippled configuration (tiny learning rate,
    /// no momentum, eight units, three epochs) is far worse.
    #[test]
    fn good_config_learns_and_bad_config_does_not() {
        let split = stratified_splits(&load_digits(), 3, 0)
            .unwrap()
            .swap_remove(0);
        let mut trainer = MlpTrainer::new(MlpConfig::default(), &split.train, 0).unwrap();
        let mut errors = Vec::new();
        let mut losses = Vec::new();
        for _ in 0..27 {
            losses.push(trainer.train_epoch());
            errors.push(trainer.error_on(&split.test).unwrap());
        }
        let last = errors[errors.len() - 1];
        assert!(last < 0.06, "error after 27 epochs: {last}");
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(mean(&errors[22..]) < mean(&errors[..5]), "{errors:?}");
        assert!(errors[0] > last, "{errors:?}");
        assert!(losses[26] < losses[0] / 3.0, "{losses:?}");

        let bad = MlpConfig {
            learning_rate: 1e-4,
            batch_size: 32,
            hidden_width: 8,
            hidden_layers: 1,
            weight_decay: 1e-4,
            momentum: 0.0,
        };
        let curve = validation_curve(bad, &split.train, &split.test, 0, 3).unwrap();
        assert!(curve[2] > 0.5, "{curve:?}");
        assert!(curve[2] > 5.0 * last);
    }

    #[test]
    fn divergence_reports_chance_error() {
        let split = small_split();
        let wild = MlpConfig {
            learning_rate: 1.0,
            batch_size: 8,
            hidden_width: 64,
            hidden_layers: 3,
            weight_decay: 1e-6,
            momentum: 0.99,
        };
        let mut trainer = MlpTrainer::new(wild, &split.train, 0).unwrap();
        let losses: Vec<f64> = (0..3).map(|_| trainer.train_epoch()).collect();
        assert!(trainer.diverged(), "{losses:?}");
        assert!(losses.last().unwrap().is_nan());
        assert_eq!(trainer.epoch(), 3);
        assert_eq!(
            trainer.error_on(&split.test).unwrap().to_bits(),
            DIVERGED_ERROR.to_bits()
        );
        let state = MlpState::from_bytes(&trainer.state().to_bytes()).unwrap();
        assert!(state.diverged());
        let resumed = MlpTrainer::resume(&split.train, state).unwrap();
        assert_eq!(
            resumed.error_on(&split.test).unwrap().to_bits(),
            DIVERGED_ERROR.to_bits()
        );
    }

    #[test]
    fn invalid_configurations_and_data_are_errors() {
        let split = small_split();
        let ok = config(0.01, 0.9, 8);
        let with = |change: fn(&mut MlpConfig)| {
            let mut c = ok;
            change(&mut c);
            c
        };
        let bad = [
            ("learning_rate", with(|c| c.learning_rate = 0.0)),
            ("learning_rate", with(|c| c.learning_rate = f64::NAN)),
            ("batch_size", with(|c| c.batch_size = 0)),
            ("hidden_width", with(|c| c.hidden_width = 0)),
            ("hidden_layers", with(|c| c.hidden_layers = 0)),
            ("hidden_layers", with(|c| c.hidden_layers = 4)),
            ("weight_decay", with(|c| c.weight_decay = -1.0)),
            ("momentum", with(|c| c.momentum = 1.0)),
        ];
        for (name, c) in bad {
            match MlpTrainer::new(c, &split.train, 0) {
                Err(EvalError::InvalidParam { name: got, .. }) => assert_eq!(got, name),
                other => panic!("{c:?}: {other:?}"),
            }
        }
        let narrow = Dataset::new(vec![vec![0.0; 3]; 4], vec![0, 1, 2, 3]).unwrap();
        assert!(matches!(
            MlpTrainer::new(ok, &narrow, 0),
            Err(EvalError::InvalidData(_))
        ));
        let trainer = MlpTrainer::new(ok, &split.train, 0).unwrap();
        assert!(trainer.error_on(&narrow).is_err());
        let labels = Dataset::new(vec![vec![0.0; 64]; 2], vec![0, 10]).unwrap();
        assert!(MlpTrainer::new(ok, &labels, 0).is_err());
        // A batch larger than the training set is one full batch.
        let mut whole = MlpTrainer::new(with(|c| c.batch_size = 5_000), &split.train, 0);
        assert!(whole
            .as_mut()
            .map(MlpTrainer::train_epoch)
            .is_ok_and(f64::is_finite));
    }

    #[test]
    fn cross_validation_runs_the_folds_in_lockstep() {
        let data = load_digits().stratified_subsample(30, 2).unwrap();
        let splits = stratified_splits(&data, 3, 4).unwrap();
        let c = config(0.05, 0.9, 16);
        let mut cv = MlpCrossValidation::new(&splits, c, 9).unwrap();
        let mut separate: Vec<MlpTrainer> = splits
            .iter()
            .enumerate()
            .map(|(k, s)| MlpTrainer::new(c, &s.train, derive_seed(9, k as u64)).unwrap())
            .collect();
        for epoch in 1..=3 {
            let mean = cv.train_epoch().unwrap();
            let mut sum = 0.0;
            for (t, s) in separate.iter_mut().zip(&splits) {
                t.train_epoch();
                sum += t.error_on(&s.test).unwrap();
            }
            assert_eq!(mean.to_bits(), (sum / 3.0).to_bits());
            assert_eq!(cv.epoch(), epoch);
        }
        assert!(MlpCrossValidation::new(&[], c, 0).is_err());
    }
}

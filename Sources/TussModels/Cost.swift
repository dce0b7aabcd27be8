/// Multiply-accumulate counts of the models' forward passes, counted layer by layer as the reference documents do
/// (matrix products and convolutions, attention score and value products; norms, activations and FFTs excluded).
public enum ModelCost {
    static func locoformer(_ c: LocoformerConfig, ffn: [LocoformerConfig.FFNConfig], sequences: Int, length: Int) -> Double {
        let d = Double(c.embDim), a = Double(c.attentionDim)
        let rows = Double(sequences * length)
        var macs = rows * d * 3 * a + rows * a * d + 2 * Double(sequences) * Double(length * length) * a
        for f in ffn {
            let k = Double(f.kernel), h = Double(f.hidden)
            let convRows = Double(sequences * (length + f.kernel - 1))
            macs += convRows * k * d * 2 * h + rows * k * h * d
        }
        return macs
    }

    /// MACs of one TUSS forward over `frames` STFT frames with `prompts` prompts.
    public static func tuss(_ c: TUSSConfig, frames: Int, prompts: Int) -> Double {
        let k = c.bandCount, d = Double(c.embDim)
        var macs = 0.0
        for b in 0..<k { macs += Double(frames) * Double(2 * (c.bandEdges[b + 1] - c.bandEdges[b])) * d }
        let steps = frames + prompts + (c.useSOSToken ? 1 : 0)
        let crossBlock = locoformer(c.cross, ffn: c.cross.freqFFN, sequences: steps, length: k)
            + locoformer(c.cross, ffn: c.cross.frameFFN, sequences: k, length: steps)
        let tseBlock = locoformer(c.tse, ffn: c.tse.freqFFN, sequences: prompts * frames, length: k)
            + locoformer(c.tse, ffn: c.tse.frameFFN, sequences: prompts * k, length: frames)
        macs += Double(c.crossBlocks) * crossBlock + Double(c.tseBlocks) * tseBlock
        for b in 0..<k {
            let n = Double(c.bandEdges[b + 1] - c.bandEdges[b])
            macs += Double(prompts * frames) * (d * 4 * d + 16 * d * d + 4 * d * 4 * n)
        }
        return macs
    }

    /// MACs of the DAC encoder (with RVQ) and decoder for `frames` latent frames.
    public static func dac(_ c: DACConfig, frames: Int) -> (encode: Double, decode: Double) {
        var enc = 0.0
        var length = Double(frames * c.hopLength)
        var d = Double(c.encoderDim)
        enc += length * d * 7
        for s in c.encoderRates {
            let half = d
            enc += 3 * (length * half * half * 7 + length * half * half)
            d *= 2
            length /= Double(s)
            enc += length * half * d * Double(2 * s)
        }
        enc += length * d * Double(c.latentDim) * 3
        enc += Double(c.codebooks) * length * (2 * Double(c.latentDim * c.codebookDim) + Double(c.codebookSize * c.codebookDim))
        var dec = Double(frames) * Double(c.latentDim) * Double(c.decoderDim) * 7
        var ch = Double(c.decoderDim)
        var l = Double(frames)
        for s in c.decoderRates {
            let out = ch / 2
            dec += l * ch * out * Double(2 * s)
            l *= Double(s)
            dec += 3 * (l * out * out * 7 + l * out * out)
            ch = out
        }
        dec += l * ch * 7
        return (enc, dec)
    }

    /// MACs of the latent masker for `frames` frames: the shared part (input projection and joint layers) and the
    /// part every prompt adds (FiLM layers, mask head and the additive head if any). Each frame attends to at most
    /// `window` frames (plus the N+1 prompt tokens in the joint layers); the constant prompt-token work is left out.
    public static func masker(_ c: LatentMaskerConfig, frames: Int, prompts: Int) -> (shared: Double, perPrompt: Double) {
        let d = Double(c.modelDim), f = Double(c.ffnDim), t = Double(frames)
        // Keys seen per frame, summed over the stream: the window fills up over the first W frames.
        let w = Double(c.window)
        let keys = frames >= c.window ? (t - w) * w + w * (w + 1) / 2 : t * (t + 1) / 2
        let dense = t * (4 * d * d + 2 * d * f)
        let joint = Double(c.jointLayers) * (dense + 2 * d * (keys + t * Double(prompts + 1)))
        // The input projection sees the frame and, with lookahead L, the L frames after it.
        let shared = t * Double(c.latentDim * (1 + c.lookahead)) * d + joint
        let heads = c.additive ? 2.0 : 1.0
        let perPrompt = Double(c.filmLayers) * (dense + 2 * d * keys) + heads * t * d * Double(c.latentDim)
        return (shared, perPrompt)
    }
}

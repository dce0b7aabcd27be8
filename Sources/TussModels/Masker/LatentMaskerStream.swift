import TussTensor

/// Streaming state of a `LatentMasker` for one prompt list: per-layer key/value caches of the last W−1 frames,
/// the constant prompt keys/values, and the FiLM parameters of every prompt.
///
/// With lookahead 0 each pushed frame comes back masked at once (algorithmic latency one codec frame); with
/// `config.lookahead` L, a frame comes back once the L frames after it have arrived (L more frames of latency), and
/// `finish()` returns the last L. Any split of the input into pushes, then `finish()`, gives the offline result
/// (up to float rounding).
public struct LatentMaskerStream: Sendable {
    let masker: LatentMasker
    /// How many prompts (N); the prefix is N+1 tokens.
    public let promptCount: Int
    /// Frames masked so far (the absolute position of the next frame to mask); pushed frames lag it by up to
    /// `lookahead`.
    public private(set) var position: Int = 0
    /// Rows in every frame cache: min(W−1, position).
    var cached = 0
    /// Per joint layer: keys and values of the start and prompt tokens, `[N+1, 2D]` (`[k | v]` rows).
    let prefixKV: [[Float]]
    /// Per joint layer: cached frame keys and values, `[cached, 2D]` (keys rotated at their positions).
    var jointCache: [[Float]]
    /// Per prompt, per FiLM layer: cached frame keys and values.
    var filmCache: [[[Float]]]
    /// Per prompt: `filmLayers` blocks of `[γ | β]`, `2D` floats each.
    let filmParameters: [[Float]]
    /// Latent frames received but not masked yet, time-major `[held, C]`: the last `lookahead` wait for the frames
    /// after them.
    var held: [Float] = []
    /// Whether `finish()` has run; pushing after it is a programming error.
    public private(set) var finished = false
    /// Frames a push holds back before masking them (`config.lookahead`).
    public var lookahead: Int { masker.config.lookahead }

    /// - Parameter startPosition: the absolute index of the first frame (tests use it to check that results depend
    ///   on relative positions only, hours into a stream).
    init(masker: LatentMasker, prompts: [Prompt], startPosition: Int = 0) {
        self.masker = masker
        promptCount = prompts.count
        position = startPosition
        let c = masker.config, d = c.modelDim
        let tokens = prompts.count + 1
        var h = [Float](repeating: 0, count: tokens * d)
        h.replaceSubrange(0..<d, with: masker.startToken)
        for (n, p) in prompts.enumerated() {
            let row = masker.promptRow(p)
            for i in 0..<d { h[(n + 1) * d + i] = masker.promptEmbed[row * d + i] + masker.slotEmbed[n * d + i] }
        }
        var normed = [Float](repeating: 0, count: tokens * d)
        var qkv = [Float](repeating: 0, count: tokens * 3 * d)
        var mixed = [Float](repeating: 0, count: tokens * d)
        var hidden = [Float](repeating: 0, count: tokens * c.ffnDim)
        var prefixes: [[Float]] = []
        h.withUnsafeMutableBufferPointer { hb in normed.withUnsafeMutableBufferPointer { nb in
        qkv.withUnsafeMutableBufferPointer { qb in mixed.withUnsafeMutableBufferPointer { mb in
        hidden.withUnsafeMutableBufferPointer { fb in
            guard let hp = hb.baseAddress, let np = nb.baseAddress, let qp = qb.baseAddress,
                  let mp = mb.baseAddress, let fp = fb.baseAddress else { return }
            for layer in masker.joint {
                layer.attnNorm.apply(hp, into: np, rows: tokens)
                layer.qkv.apply(np, rows: tokens, into: qp)
                var kv = [Float](repeating: 0, count: tokens * 2 * d)
                for r in 0..<tokens {
                    for i in 0..<(2 * d) { kv[r * 2 * d + i] = qp[r * 3 * d + d + i] }
                }
                prefixes.append(kv)
                let q = UnsafePointer(qp)
                WindowedAttention.dense(queries: .init(q, stride: 3 * d), count: tokens,
                                        keys: .init(q + d, stride: 3 * d), values: .init(q + 2 * d, stride: 3 * d),
                                        keyCount: tokens, heads: c.heads, headDim: c.headDim, output: mp, outputStride: d)
                layer.out.apply(mp, rows: tokens, into: hp, accumulate: true)
                layer.feedForward(hp, rows: tokens, normed: np, hidden: fp)
            }
            masker.jointNorm.apply(hp, into: np, rows: tokens)
        } } } } }
        prefixKV = prefixes
        var films: [[Float]] = []
        for n in 0..<prompts.count {
            var params = [Float](repeating: 0, count: c.filmLayers * 2 * d)
            normed.withUnsafeBufferPointer { nb in params.withUnsafeMutableBufferPointer { pb in
                guard let np = nb.baseAddress, let pp = pb.baseAddress else { return }
                for (l, f) in masker.film.enumerated() { f.apply(np + (n + 1) * d, rows: 1, into: pp + l * 2 * d) }
            } }
            films.append(params)
        }
        filmParameters = films
        jointCache = [[Float]](repeating: [], count: c.jointLayers)
        filmCache = [[[Float]]](repeating: [[Float]](repeating: [], count: c.filmLayers), count: prompts.count)
    }

    /// Scratch for one push of `rows` frames.
    struct Scratch {
        var normed: [Float]
        var qkv: [Float]
        var plainQueries: [Float]
        var mixed: [Float]
        var hidden: [Float]

        init(rows: Int, dim: Int, ffn: Int) {
            normed = [Float](repeating: 0, count: rows * dim)
            qkv = [Float](repeating: 0, count: rows * 3 * dim)
            plainQueries = normed
            mixed = normed
            hidden = [Float](repeating: 0, count: rows * ffn)
        }
    }

    /// Runs one layer over `rows` new frames of `h` in place, extending and trimming its key/value cache.
    static func frameLayer(_ layer: MaskerLayer, config c: LatentMaskerConfig, _ h: UnsafeMutablePointer<Float>,
                           rows: Int, history: Int, cache: inout [Float], prefix: [Float], prefixCount: Int,
                           rope: ExactRotaryTable, scratch s: inout Scratch) {
        let d = c.modelDim
        var kv = [Float](repeating: 0, count: (history + rows) * 2 * d)
        kv.replaceSubrange(0..<(history * 2 * d), with: cache)
        s.normed.withUnsafeMutableBufferPointer { nb in s.qkv.withUnsafeMutableBufferPointer { qb in
        s.plainQueries.withUnsafeMutableBufferPointer { pb in s.mixed.withUnsafeMutableBufferPointer { mb in
        s.hidden.withUnsafeMutableBufferPointer { fb in kv.withUnsafeMutableBufferPointer { kb in
        prefix.withUnsafeBufferPointer { xb in
            guard let np = nb.baseAddress, let qp = qb.baseAddress, let pp = pb.baseAddress, let mp = mb.baseAddress,
                  let fp = fb.baseAddress, let kp = kb.baseAddress else { return }
            layer.attnNorm.apply(h, into: np, rows: rows)
            layer.qkv.apply(np, rows: rows, into: qp)
            for r in 0..<rows { (pp + r * d).update(from: qp + r * 3 * d, count: d) }
            rope.rotate(qp, rows: rows, stride: 3 * d, heads: c.heads)
            rope.rotate(qp + d, rows: rows, stride: 3 * d, heads: c.heads)
            for r in 0..<rows { (kp + (history + r) * 2 * d).update(from: qp + r * 3 * d + d, count: 2 * d) }
            let keys = UnsafePointer(kp), q = UnsafePointer(qp)
            let prefixBase = xb.baseAddress ?? keys
            WindowedAttention.apply(
                queries: .init(q, stride: 3 * d), plainQueries: .init(pp, stride: d), count: rows,
                prefixKeys: .init(prefixBase, stride: 2 * d), prefixValues: .init(prefixBase + (prefixCount > 0 ? d : 0), stride: 2 * d),
                prefixCount: prefixCount,
                frameKeys: .init(keys, stride: 2 * d), frameValues: .init(keys + d, stride: 2 * d), history: history,
                window: c.window, heads: c.heads, headDim: c.headDim, output: mp, outputStride: d)
            layer.out.apply(mp, rows: rows, into: h, accumulate: true)
            layer.feedForward(h, rows: rows, normed: np, hidden: fp)
        } } } } } } }
        let keep = min(c.window - 1, history + rows)
        cache = Array(kv[((history + rows - keep) * 2 * d)...])
    }

    /// Frames run through the layers at once: longer pushes are split, so scratch memory stays bounded whatever
    /// the caller sends (a codes chunk may hold 2²⁰ frames).
    static let block = 256

    /// Feeds the next latent frames (C, t); returns one masked latent per prompt for every frame that is ready:
    /// all t with lookahead 0, else each frame whose next `lookahead` frames have arrived (so (C, t) once the
    /// stream is that far in, fewer at its start). `finish()` returns the rest.
    public mutating func push(_ latent: Tensor) -> [Tensor] {
        let channels = masker.config.latentDim
        precondition(latent.rank == 2 && latent.shape[0] == channels,
                     "LatentMaskerStream: latent \(latent.shape) is not (\(channels), frames)")
        precondition(!finished, "LatentMaskerStream: push after finish")
        held.append(contentsOf: latent.transposed(0, 1).data)
        let total = held.count / channels
        return run(ready: max(0, total - masker.config.lookahead), total: total)
    }

    /// Ends the stream: masks the frames still held back for lookahead, with frames past the end counting as zero
    /// (as in training). One latent (C, ≤ lookahead) per prompt; (C, 0) for a causal masker or a second call.
    public mutating func finish() -> [Tensor] {
        finished = true
        let total = held.count / masker.config.latentDim
        return run(ready: total, total: total)
    }

    /// Masks the first `ready` of the `total` held frames and drops them from `held`.
    mutating func run(ready: Int, total: Int) -> [Tensor] {
        let channels = masker.config.latentDim, ahead = masker.config.lookahead
        var outputs = [Tensor](repeating: Tensor(zeros: [channels, ready]), count: promptCount)
        for start in stride(from: 0, to: ready, by: Self.block) {
            let n = min(Self.block, ready - start)
            let rows = Tensor(shape: [n, channels], data: Array(held[(start * channels)..<((start + n) * channels)]))
            var later: Tensor?
            if ahead > 0 {
                var next = Tensor(zeros: [n, ahead * channels])
                for i in 0..<n {
                    for k in 1...ahead where start + i + k < total {
                        let from = (start + i + k) * channels, to = (i * ahead + k - 1) * channels
                        next.data.replaceSubrange(to..<(to + channels), with: held[from..<(from + channels)])
                    }
                }
                later = next
            }
            for (p, masked) in pushBlock(rows, later: later).enumerated() {
                for ch in 0..<channels {
                    outputs[p].data.replaceSubrange((ch * ready + start)..<(ch * ready + start + n),
                                                    with: masked.data[(ch * n)..<((ch + 1) * n)])
                }
            }
        }
        // A fresh array rather than removeFirst, which keeps the capacity: one long push must not pin its size in
        // memory for the rest of the stream (at most `lookahead` frames stay).
        held = Array(held[(ready * channels)...])
        return outputs
    }

    /// (C, a) and (C, b) → (C, a + b).
    static func joinFrames(_ a: Tensor, _ b: Tensor) -> Tensor {
        let channels = a.shape[0], na = a.shape[1], nb = b.shape[1]
        var out = Tensor(zeros: [channels, na + nb])
        for ch in 0..<channels {
            out.data.replaceSubrange((ch * (na + nb))..<(ch * (na + nb) + na), with: a.data[(ch * na)..<((ch + 1) * na)])
            out.data.replaceSubrange((ch * (na + nb) + na)..<((ch + 1) * (na + nb)), with: b.data[(ch * nb)..<((ch + 1) * nb)])
        }
        return out
    }

    /// Masks at most `block` frames, time-major `[t, C]`, whose next `lookahead` frames are `later` `[t, L·C]`.
    mutating func pushBlock(_ frames: Tensor, later: Tensor?) -> [Tensor] {
        let c = masker.config, d = c.modelDim, channels = c.latentDim
        let rows = frames.shape[0], history = cached, masker = masker
        guard rows > 0 else { return [Tensor](repeating: Tensor(zeros: [channels, 0]), count: promptCount) }
        var h = masker.inputProj(frames)                        // [t, D]
        if let later, let ahead = masker.inputAhead {
            h.data.withUnsafeMutableBufferPointer { hb in later.data.withUnsafeBufferPointer { lb in
                guard let hp = hb.baseAddress, let lp = lb.baseAddress else { return }
                ahead.apply(lp, rows: rows, into: hp, accumulate: true)
            } }
        }
        let rope = ExactRotaryTable(headDim: c.headDim, start: position, count: rows)
        var scratch = Scratch(rows: rows, dim: d, ffn: c.ffnDim)
        for (l, layer) in masker.joint.enumerated() {
            h.data.withUnsafeMutableBufferPointer { hb in
                guard let hp = hb.baseAddress else { return }
                Self.frameLayer(layer, config: c, hp, rows: rows, history: history, cache: &jointCache[l],
                                prefix: prefixKV[l], prefixCount: promptCount + 1, rope: rope, scratch: &scratch)
            }
        }
        var shared = h
        shared.data.withUnsafeMutableBufferPointer { sb in
            guard let sp = sb.baseAddress else { return }
            masker.jointNorm.apply(sp, into: sp, rows: rows)
        }
        var outputs: [Tensor] = []
        var mask = Tensor(zeros: [rows, channels])
        for n in 0..<promptCount {
            var g = shared
            let parameters = filmParameters[n]
            for (l, layer) in masker.filmStage.enumerated() {
                g.data.withUnsafeMutableBufferPointer { gb in parameters.withUnsafeBufferPointer { fb in
                    guard let gp = gb.baseAddress, let fp = fb.baseAddress else { return }
                    let gamma = fp + l * 2 * d, beta = gamma + d
                    for r in 0..<rows {
                        let row = gp + r * d
                        for i in 0..<d { row[i] = row[i] * (1 + gamma[i]) + beta[i] }
                    }
                    Self.frameLayer(layer, config: c, gp, rows: rows, history: history, cache: &filmCache[n][l],
                                    prefix: [], prefixCount: 0, rope: rope, scratch: &scratch)
                } }
            }
            var out = Tensor(zeros: [channels, rows])
            g.data.withUnsafeMutableBufferPointer { gb in mask.data.withUnsafeMutableBufferPointer { mb in
            frames.data.withUnsafeBufferPointer { zb in out.data.withUnsafeMutableBufferPointer { ob in
                guard let gp = gb.baseAddress, let mp = mb.baseAddress, let zp = zb.baseAddress, let op = ob.baseAddress else { return }
                masker.outNorm.apply(gp, into: gp, rows: rows)
                masker.maskHead.apply(gp, rows: rows, into: mp)
                // The additive head's term reuses the mask buffer once the product has consumed the mask.
                for ch in 0..<channels {
                    let o = op + ch * rows
                    for t in 0..<rows { o[t] = zp[t * channels + ch] * mp[t * channels + ch] }
                }
                if let addHead = masker.addHead {
                    addHead.apply(gp, rows: rows, into: mp)
                    for ch in 0..<channels {
                        let o = op + ch * rows
                        for t in 0..<rows { o[t] += mp[t * channels + ch] }
                    }
                }
            } } } }
            outputs.append(out)
        }
        position += rows
        cached = min(c.window - 1, cached + rows)
        return outputs
    }
}

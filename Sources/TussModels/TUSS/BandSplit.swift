import TussTensor

/// The band-split encoder: per band, an utterance-level group norm over the band's interleaved (Re, Im) channels
/// and all frames, then a per-frame projection to `dim`.
struct BandSplitEncoder: Sendable {
    struct Band: Sendable {
        let start: Int, width: Int
        let normWeight: [Float], normBias: [Float]
        let projection: Linear
    }
    let bands: [Band]
    let dim: Int

    init(_ w: WeightReader, edges: [Int], dim: Int) throws(ModelError) {
        var out: [Band] = []
        for b in 0..<(edges.count - 1) {
            let n = edges[b + 1] - edges[b]
            let bw = w.scoped("\(b)")
            out.append(Band(
                start: edges[b], width: n,
                normWeight: try bw.floats("0.weight", shape: [2 * n]), normBias: try bw.floats("0.bias", shape: [2 * n]),
                projection: Linear(weight: try bw.floats("1.weight", shape: [dim, 2 * n, 1]),
                                   bias: try bw.floats("1.bias", shape: [dim]), inFeatures: 2 * n, outFeatures: dim)))
        }
        bands = out
        self.dim = dim
    }

    /// Encodes a frame-major spectrum (`re`, `im` of `[frames, bins]`) into `out` laid out `[frames, bands, dim]`
    /// starting at row `rowOffset` (rows before it hold prompt tokens).
    func encode(re: [Float], im: [Float], frames: Int, bins: Int, into out: UnsafeMutablePointer<Float>, rowOffset: Int) {
        let k = bands.count
        ComputeThreads.parallelFor(k) { b in
            let band = bands[b]
            let c = 2 * band.width
            var x = [Float](repeating: 0, count: frames * c)
            var y = [Float](repeating: 0, count: frames * dim)
            x.withUnsafeMutableBufferPointer { xb in y.withUnsafeMutableBufferPointer { yb in
                let xp = xb.baseAddress!, yp = yb.baseAddress!
                for t in 0..<frames {
                    for i in 0..<band.width {
                        xp[t * c + 2 * i] = re[t * bins + band.start + i]
                        xp[t * c + 2 * i + 1] = im[t * bins + band.start + i]
                    }
                }
                Normalization.groupNormChannelsLast(xp, length: frames, channels: c, groups: 1,
                                                    weight: band.normWeight, bias: band.normBias)
                band.projection.apply(xp, rows: frames, into: yp, parallel: false)
                for t in 0..<frames {
                    (out + ((rowOffset + t) * k + b) * dim).update(from: yp + t * dim, count: dim)
                }
            } }
        }
    }
}

/// The band-wise decoder: per band, group norm, two tanh layers and a GLU that yields the band's complex mask.
struct BandwiseDecoder: Sendable {
    struct Band: Sendable {
        let start: Int, width: Int
        let normWeight: [Float], normBias: [Float]
        let l1: Linear, l2: Linear, l3: Linear
    }
    let bands: [Band]
    let dim: Int

    init(_ w: WeightReader, edges: [Int], dim: Int) throws(ModelError) {
        var out: [Band] = []
        for b in 0..<(edges.count - 1) {
            let n = edges[b + 1] - edges[b]
            let bw = w.scoped("\(b)")
            let h = 4 * dim
            out.append(Band(
                start: edges[b], width: n,
                normWeight: try bw.floats("0.weight", shape: [dim]), normBias: try bw.floats("0.bias", shape: [dim]),
                l1: Linear(weight: try bw.floats("1.weight", shape: [h, dim, 1]), bias: try bw.floats("1.bias", shape: [h]), inFeatures: dim, outFeatures: h),
                l2: Linear(weight: try bw.floats("3.weight", shape: [h, h, 1]), bias: try bw.floats("3.bias", shape: [h]), inFeatures: h, outFeatures: h),
                l3: Linear(weight: try bw.floats("5.weight", shape: [4 * n, h, 1]), bias: try bw.floats("5.bias", shape: [4 * n]), inFeatures: h, outFeatures: 4 * n)))
        }
        bands = out
        self.dim = dim
    }

    /// Decodes features `[sources, frames, bands, dim]` into complex masks `[sources, frames, bins]`.
    func decode(_ h: [Float], sources: Int, frames: Int, bins: Int, maskRe: inout [Float], maskIm: inout [Float]) {
        let k = bands.count
        h.withUnsafeBufferPointer { hb in maskRe.withUnsafeMutableBufferPointer { rb in maskIm.withUnsafeMutableBufferPointer { ib in
            let hp = hb.baseAddress!, mr = rb.baseAddress!, mi = ib.baseAddress!
            ComputeThreads.parallelFor(k) { b in
                let band = bands[b]
                let rows = sources * frames
                let hidden = 4 * dim
                var x = [Float](repeating: 0, count: rows * dim)
                var a = [Float](repeating: 0, count: rows * hidden)
                var c = [Float](repeating: 0, count: rows * hidden)
                var m = [Float](repeating: 0, count: rows * 4 * band.width)
                var gated = [Float](repeating: 0, count: rows * 2 * band.width)
                x.withUnsafeMutableBufferPointer { xb in a.withUnsafeMutableBufferPointer { ab in
                c.withUnsafeMutableBufferPointer { cb in m.withUnsafeMutableBufferPointer { mb in
                gated.withUnsafeMutableBufferPointer { gb in
                    let xp = xb.baseAddress!, ap = ab.baseAddress!, cp = cb.baseAddress!, mp = mb.baseAddress!, gp = gb.baseAddress!
                    for r in 0..<rows { (xp + r * dim).update(from: hp + (r * k + b) * dim, count: dim) }
                    for s in 0..<sources {
                        // Utterance-level statistics per source and band.
                        Normalization.groupNormChannelsLast(xp + s * frames * dim, length: frames, channels: dim, groups: 1,
                                                            weight: band.normWeight, bias: band.normBias)
                    }
                    band.l1.apply(xp, rows: rows, into: ap, parallel: false)
                    Activation.tanh(ap, count: rows * hidden)
                    band.l2.apply(ap, rows: rows, into: cp, parallel: false)
                    Activation.tanh(cp, count: rows * hidden)
                    band.l3.apply(cp, rows: rows, into: mp, parallel: false)
                    Activation.glu(mp, rows: rows, width: 2 * band.width, into: gp)
                    // Gated channels are laid out [Re bins | Im bins].
                    for r in 0..<rows {
                        (mr + r * bins + band.start).update(from: gp + r * 2 * band.width, count: band.width)
                        (mi + r * bins + band.start).update(from: gp + r * 2 * band.width + band.width, count: band.width)
                    }
                } } } } }
            }
        } } }
    }
}

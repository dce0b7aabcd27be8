import TussTensor

/// Folds old-style weight norm (`weight_g`, `weight_v`) into a plain weight: `W = g · v / ‖v‖`, the norm taken over
/// all axes but the first. For transposed convolutions the first axis is the input channel, as the official code has it.
func foldedWeight(_ w: WeightReader, _ name: String, shape: [Int]) throws(ModelError) -> [Float] {
    if w.has("\(name).weight") && !w.has("\(name).weight_v") {
        return try w.floats("\(name).weight", shape: shape)
    }
    let v = try w.floats("\(name).weight_v", shape: shape)
    let g = try w.floats("\(name).weight_g", shape: [shape[0], 1, 1])
    let per = v.count / shape[0]
    var out = v
    for r in 0..<shape[0] {
        var sq = 0.0
        for i in 0..<per { let x = Double(v[r * per + i]); sq += x * x }
        let factor = Double(g[r]) / sq.squareRoot()
        for i in 0..<per { out[r * per + i] = Float(Double(v[r * per + i]) * factor) }
    }
    return out
}

/// A weight-normed convolution from a DAC file.
func dacConv(_ w: WeightReader, _ name: String, cin: Int, cout: Int, kernel: Int, stride: Int = 1,
             dilation: Int = 1, padding: Int = 0, bias: Bool = true) throws(ModelError) -> Conv1d {
    let weight = try foldedWeight(w, name, shape: [cout, cin, kernel])
    let b = bias ? try w.floats("\(name).bias", shape: [cout]) : nil
    return Conv1d(weight: weight, bias: b, inChannels: cin, outChannels: cout, kernelSize: kernel,
                  stride: stride, dilation: dilation, padding: padding)
}

/// Snake activation parameters (`alpha`, one per channel).
struct Snake: Sendable {
    let alpha: [Float]
    init(_ w: WeightReader, _ name: String, channels: Int) throws(ModelError) {
        alpha = try w.floats("\(name).alpha", shape: [1, channels, 1])
    }
    func apply(_ x: inout Tensor) {
        let (c, l) = (x.shape[0], x.shape[1])
        x.data.withUnsafeMutableBufferPointer { Activation.snake($0.baseAddress!, channels: c, length: l, alpha: alpha) }
    }
}

/// DAC's residual unit: Snake, dilated k7 conv, Snake, k1 conv, plus the input (one fused tiled pass).
struct ResidualUnit: Sendable {
    let snake1: Snake, conv1: Conv1d, snake2: Snake, conv2: Conv1d
    let fused: SnakeResidualUnit

    init(_ w: WeightReader, channels c: Int, dilation: Int) throws(ModelError) {
        snake1 = try Snake(w, "block.0", channels: c)
        conv1 = try dacConv(w, "block.1", cin: c, cout: c, kernel: 7, dilation: dilation, padding: 3 * dilation)
        snake2 = try Snake(w, "block.2", channels: c)
        conv2 = try dacConv(w, "block.3", cin: c, cout: c, kernel: 1)
        fused = SnakeResidualUnit(conv1: conv1, conv2: conv2, alpha1: snake1.alpha, alpha2: snake2.alpha)
    }

    /// The official centre crop is a no-op with these paddings: lengths agree.
    func callAsFunction(_ x: Tensor) -> Tensor { fused(x) }
}

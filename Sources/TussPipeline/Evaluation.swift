import Foundation
import TussAudio
import TussModels

/// One entry of an evaluation manifest.
public struct EvaluationItem: Codable, Sendable {
    public var task: String
    public var item: String
    public var sample_rate: Int?
    public var mixture: String
    public var prompts: [String]
    public var references: [String]

    public init(task: String, item: String, sample_rate: Int?, mixture: String, prompts: [String], references: [String]) {
        self.task = task
        self.item = item
        self.sample_rate = sample_rate
        self.mixture = mixture
        self.prompts = prompts
        self.references = references
    }
}

/// Scores of one output against its reference.
public struct EvaluationScore: Codable, Sendable {
    public var task: String
    public var item: String
    public var prompt: String
    public var output: Int
    public var si_sdr: Double?
    public var si_sdr_mixture: Double?
    public var si_sdr_improvement: Double?
    public var sdr: Double?
    /// Multi-scale log-mel distance to the reference (`MelDistance`; lower is better). Unlike SI-SDR it ignores
    /// phase, so it still ranks outputs of a codec whose decoder does not reproduce the input's waveform.
    public var mel_distance: Double? = nil
    /// The same distance for the unprocessed mixture.
    public var mel_distance_mixture: Double? = nil
    /// `mel_distance_mixture − mel_distance`: how much closer to the reference the output is than the mixture.
    public var mel_improvement: Double? = nil
    /// Which separation path made the estimate (`spectral` or `codec`).
    public var path: String? = nil
    /// BSS Eval SDR (512-tap distortion filters, as mir_eval and museval compute it; `BSSEval`).
    public var bss_sdr: Double? = nil
    /// BSS Eval SIR: the output's target part over the other references' part. Unlike SI-SDR it does not count a
    /// codec's waveform error (an artifact), so it tells whether the other sources were removed.
    public var sir: Double? = nil
    /// BSS Eval SIR of the unprocessed mixture.
    public var sir_mixture: Double? = nil
    /// `sir − sir_mixture`.
    public var sir_improvement: Double? = nil
    /// BSS Eval SAR: everything the references explain over what they do not (noise, codec artifacts).
    public var sar: Double? = nil
}

/// Runs a separator over a manifest and scores every output (permutation-invariant within repeated prompts).
public enum Evaluation {
    /// Reads a manifest: a JSON array of items with paths relative to the manifest.
    public static func loadManifest(_ path: String) throws(PipelineError) -> [EvaluationItem] {
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            return try JSONDecoder().decode([EvaluationItem].self, from: data)
        } catch let e as DecodingError {
            throw .badInput("\(path) is not a valid manifest (a JSON array of {task, item, mixture, prompts, references}): \(e.localizedDescription)")
        } catch {
            throw .notFound("cannot read manifest \(path): \(error.localizedDescription)")
        }
    }

    /// Reads audio as `[channels][samples]`, resampled to `rate` when given.
    static func readAudio(_ path: String, rate: Int?) throws -> (planar: [[Float]], rate: Int) {
        let reader = try AudioFileReader(path: path)
        let planar = try reader.readAll()
        guard let rate, rate != reader.info.sampleRate else { return (planar, reader.info.sampleRate) }
        return (try Resampler.resample(planar, from: reader.info.sampleRate, to: rate), rate)
    }

    /// Scores estimates for one item; channels are scored separately and averaged.
    /// `sampleRate` is the audio's rate, for the mel filters of the mel distance.
    public static func score(item: EvaluationItem, mixture: [[Float]], estimates: [[[Float]]], references: [[[Float]]],
                             sampleRate: Int) -> [EvaluationScore] {
        let channels = mixture.count
        // Per output: SI-SDR, mixture SI-SDR, (unused), SDR, mel, mixture mel, BSS SDR, SIR, SAR, mixture SIR.
        var sums = [[Double]](repeating: [Double](repeating: 0, count: 10), count: item.prompts.count)
        var counts = [[Int]](repeating: [Int](repeating: 0, count: 10), count: item.prompts.count)
        var order = Array(0..<item.prompts.count)
        for c in 0..<channels {
            let est = estimates.map { $0[min(c, $0.count - 1)] }
            let ref = references.map { $0[min(c, $0.count - 1)] }
            if c == 0 { order = SeparationMetrics.bestAssignment(prompts: item.prompts, estimates: est, references: ref) }
            let bss = BSSEval(references: ref)
            let mixtureSIR = bss?.criteria(of: mixture[c]).map { $0?.sir }
            for i in 0..<item.prompts.count {
                let e = est[order[i]]
                let criteria = bss.flatMap { $0.criteria(of: e)[i] }
                let values = [SeparationMetrics.siSDR(estimate: e, reference: ref[i]),
                              SeparationMetrics.siSDR(estimate: mixture[c], reference: ref[i]),
                              nil, SeparationMetrics.sdr(estimate: e, reference: ref[i]),
                              MelDistance.distance(estimate: e, reference: ref[i], sampleRate: sampleRate),
                              MelDistance.distance(estimate: mixture[c], reference: ref[i], sampleRate: sampleRate),
                              criteria?.sdr, criteria?.sir, criteria?.sar,
                              mixtureSIR?[i] ?? nil]
                for (k, v) in values.enumerated() { if let v { sums[i][k] += v; counts[i][k] += 1 } }
            }
        }
        return (0..<item.prompts.count).map { i in
            let mean = { (k: Int) -> Double? in counts[i][k] > 0 ? sums[i][k] / Double(counts[i][k]) : nil }
            let si = mean(0), mix = mean(1)
            var improvement: Double?
            if let si, let mix { improvement = si - mix }
            var score = EvaluationScore(task: item.task, item: item.item, prompt: item.prompts[i], output: order[i],
                                        si_sdr: si, si_sdr_mixture: mix, si_sdr_improvement: improvement, sdr: mean(3))
            score.mel_distance = mean(4)
            score.mel_distance_mixture = mean(5)
            if let a = mean(4), let b = mean(5) { score.mel_improvement = b - a }
            score.bss_sdr = mean(6)
            score.sir = mean(7)
            score.sar = mean(8)
            score.sir_mixture = mean(9)
            if let a = mean(7), let b = mean(9) { score.sir_improvement = a - b }
            return score
        }
    }

    /// Separates and scores every item (optionally only some tasks) with the spectral path.
    public static func run(manifest path: String, separator: SpectralSeparator, tasks: Set<String>?,
                           progress: ((Int, Int) -> Void)? = nil) throws(PipelineError) -> [EvaluationScore] {
        try run(manifest: path, label: "spectral", tasks: tasks, progress: progress) { (x, rate, prompts) throws(PipelineError) in
            try separator.separate(x, sampleRate: rate, prompts: prompts)
        }
    }

    /// Separates and scores every item with the codec path (encode, mask the codes, decode).
    public static func run(manifest path: String, separator: CodecPathSeparator, tasks: Set<String>?,
                           progress: ((Int, Int) -> Void)? = nil) throws(PipelineError) -> [EvaluationScore] {
        try run(manifest: path, label: "codec", tasks: tasks, progress: progress) { (x, rate, prompts) throws(PipelineError) in
            try separator.separate(x, sampleRate: rate, prompts: prompts)
        }
    }

    /// Scores the codec path's ceiling: every reference sent through the codec alone stands in for the estimate,
    /// which is what a perfect latent masker would decode to. The masker is not run; scores are tagged
    /// `codec-oracle`. Separation scores of the codec path are bounded by these, so they tell the masker's share of
    /// the error from the codec's.
    public static func runCodecOracle(manifest path: String, codec: CodecHandle, codebooks: Int? = nil, tasks: Set<String>?,
                                      progress: ((Int, Int) -> Void)? = nil) throws(PipelineError) -> [EvaluationScore] {
        try runWithReferences(manifest: path, label: "codec-oracle", tasks: tasks, progress: progress) { (_, rate, _, references) throws(PipelineError) in
            try references.map { reference throws(PipelineError) in
                try CodecPathSeparator.roundTrip(reference, sampleRate: rate, codec: codec, codebooks: codebooks)
            }
        }
    }

    /// Scores the codec path's do-nothing baseline: the mixture sent through the codec alone stands in for every
    /// prompt's estimate, which is what a masker that changes nothing would decode to (a masker can score below it).
    /// The masker is not run; scores are tagged `codec-passthrough`. The codec path's SI-SDRi minus this one is what the masker itself adds, apart from what
    /// the codec costs the mixture.
    public static func runCodecPassthrough(manifest path: String, codec: CodecHandle, codebooks: Int? = nil, tasks: Set<String>?,
                                           progress: ((Int, Int) -> Void)? = nil) throws(PipelineError) -> [EvaluationScore] {
        try runWithReferences(manifest: path, label: "codec-passthrough", tasks: tasks, progress: progress) { (mixture, rate, prompts, _) throws(PipelineError) in
            let decoded = try CodecPathSeparator.roundTrip(mixture, sampleRate: rate, codec: codec, codebooks: codebooks)
            return Array(repeating: decoded, count: prompts.count)
        }
    }

    /// Separates every item with `separate` (`[channels][samples]`, rate, prompts → `[prompt][channel][samples]`)
    /// and scores the outputs, tagging each score with `label`.
    static func run(manifest path: String, label: String, tasks: Set<String>?, progress: ((Int, Int) -> Void)?,
                    separate: ([[Float]], Int, [Prompt]) throws(PipelineError) -> [[[Float]]]) throws(PipelineError) -> [EvaluationScore] {
        try runWithReferences(manifest: path, label: label, tasks: tasks, progress: progress) { (x, rate, prompts, _) throws(PipelineError) in
            try separate(x, rate, prompts)
        }
    }

    /// The same, with the item's references (`[prompt][channel][samples]`) also handed to `separate`, for oracles.
    static func runWithReferences(manifest path: String, label: String, tasks: Set<String>?, progress: ((Int, Int) -> Void)?,
                    separate: ([[Float]], Int, [Prompt], [[[Float]]]) throws(PipelineError) -> [[[Float]]]) throws(PipelineError) -> [EvaluationScore] {
        let items = try loadManifest(path).filter { tasks?.contains($0.task) ?? true }
        guard !items.isEmpty else { throw .badInput("\(path): no items\(tasks.map { " for tasks \($0.sorted().joined(separator: ","))" } ?? "")") }
        let base = (path as NSString).deletingLastPathComponent
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : (base as NSString).appendingPathComponent(p) }
        var scores: [EvaluationScore] = []
        for (n, item) in items.enumerated() {
            guard item.prompts.count == item.references.count else {
                throw .badInput("\(path): item \(item.task)/\(item.item) has \(item.prompts.count) prompts but \(item.references.count) references")
            }
            do {
                let prompts = try item.prompts.map { try Prompt(parsing: $0) }
                let (mixture, rate) = try readAudio(resolve(item.mixture), rate: nil)
                let references = try item.references.map { try readAudio(resolve($0), rate: rate).planar.map { fitLength($0, mixture[0].count) } }
                let estimates = try separate(mixture, rate, prompts, references)
                var normalized = item
                normalized.prompts = prompts.map(\.name)
                scores += score(item: normalized, mixture: mixture, estimates: estimates, references: references,
                                sampleRate: rate).map {
                    var s = $0
                    s.path = label
                    return s
                }
            } catch {
                throw pipelineError(error, context: "\(item.task)/\(item.item)")
            }
            progress?(n + 1, items.count)
        }
        return scores
    }

    /// SI-SDRi of two paths side by side, per task and prompt (mean over the same items), for `eval --path both`.
    public static func comparisonTable(spectral: [EvaluationScore], codec: [EvaluationScore]) -> String {
        func mean(_ scores: [EvaluationScore], _ key: KeyPath<EvaluationScore, Double?> = \.si_sdr_improvement) -> String {
            let v = scores.compactMap { $0[keyPath: key] }
            return v.isEmpty ? "n/a" : String(format: "%.2f", v.reduce(0, +) / Double(v.count))
        }
        var lines = [pad("task", 6) + " " + pad("prompt", 10) + " " + pad("n", 5, left: true) + " "
                     + pad("spectral SI-SDRi", 17, left: true) + " " + pad("codec SI-SDRi", 14, left: true) + " "
                     + pad("spectral mel gain", 18, left: true) + " " + pad("codec mel gain", 15, left: true) + " "
                     + pad("spectral SIRi", 14, left: true) + " " + pad("codec SIRi", 11, left: true)]
        for task in Array(Set(spectral.map(\.task) + codec.map(\.task))).sorted() {
            let a = spectral.filter { $0.task == task }, b = codec.filter { $0.task == task }
            var prompts: [String] = []
            for s in a + b where !prompts.contains(s.prompt) { prompts.append(s.prompt) }
            for prompt in prompts + ["all"] {
                let pa = prompt == "all" ? a : a.filter { $0.prompt == prompt }
                let pb = prompt == "all" ? b : b.filter { $0.prompt == prompt }
                lines.append(pad(task, 6) + " " + pad(prompt, 10) + " " + pad("\(max(pa.count, pb.count))", 5, left: true) + " "
                             + pad(mean(pa), 17, left: true) + " " + pad(mean(pb), 14, left: true) + " "
                             + pad(mean(pa, \.mel_improvement), 18, left: true) + " "
                             + pad(mean(pb, \.mel_improvement), 15, left: true) + " "
                             + pad(mean(pa, \.sir_improvement), 14, left: true) + " "
                             + pad(mean(pb, \.sir_improvement), 11, left: true))
            }
        }
        return lines.joined(separator: "\n")
    }

    /// A table per task and prompt: count, mean and median of SI-SDR, SI-SDRi and SDR; mean mel distance and its
    /// improvement over the mixture; mean BSS Eval SIR, its improvement over the mixture, and SAR.
    public static func table(_ scores: [EvaluationScore]) -> String {
        func stats(_ v: [Double]) -> (Double, Double) {
            guard !v.isEmpty else { return (.nan, .nan) }
            let s = v.sorted()
            let median = s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
            return (v.reduce(0, +) / Double(v.count), median)
        }
        func num(_ x: Double) -> String { pad(x.isNaN ? "n/a" : String(format: "%.2f", x), 8, left: true) }
        var lines = [pad("task", 6) + " " + pad("prompt", 10) + " " + pad("n", 5, left: true) + "  " +
                     ["SI-SDR", "median", "SI-SDRi", "median", "SDR", "median", "mel", "mel gain", "SIR", "SIRi", "SAR"].map { pad($0, 8, left: true) }.joined(separator: " ")]
        let tasks = Array(Set(scores.map(\.task))).sorted()
        for task in tasks {
            let ts = scores.filter { $0.task == task }
            var prompts: [String] = []
            for s in ts where !prompts.contains(s.prompt) { prompts.append(s.prompt) }
            for prompt in prompts + ["all"] {
                let ps = prompt == "all" ? ts : ts.filter { $0.prompt == prompt }
                let a = stats(ps.compactMap(\.si_sdr)), b = stats(ps.compactMap(\.si_sdr_improvement)), c = stats(ps.compactMap(\.sdr))
                let m = stats(ps.compactMap(\.mel_distance)), g = stats(ps.compactMap(\.mel_improvement))
                let sir = stats(ps.compactMap(\.sir)), sirGain = stats(ps.compactMap(\.sir_improvement))
                let sar = stats(ps.compactMap(\.sar))
                lines.append(pad(task, 6) + " " + pad(prompt, 10) + " " + pad("\(ps.count)", 5, left: true) + "  " +
                             [a.0, a.1, b.0, b.1, c.0, c.1, m.0, g.0, sir.0, sirGain.0, sar.0].map(num).joined(separator: " "))
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// `s` padded with spaces to `n` characters, on the left with `left` (table columns).
private func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, n - s.count))
    return left ? fill + s : s + fill
}

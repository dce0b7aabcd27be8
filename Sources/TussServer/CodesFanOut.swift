import Foundation
import TussModels
import TussPipeline

/// One piece of an output codes stream: a header, a chunk or the end marker of output `output`, in codes-file
/// framing (docs/codes-format.md).
public struct OutputPiece: Sendable, Equatable {
    /// The output (prompt) index.
    public var output: Int
    /// The framed bytes.
    public var bytes: Data
}

/// Turns one input codes stream into one codes stream per prompt, chunk by chunk.
///
/// Each input channel has its own separator. Separated frames are buffered per output and channel, and written as
/// time ranges covering every channel (the codes format's chunk order), as soon as all channels have them.
struct CodesFanOut {
    let inputHeader: CodesHeader
    let outputs: Int
    private var separators: [CodesSeparator]
    /// `[output][channel][codebook][frame]` separated but not yet written.
    private var pending: [[[[Int32]]]]
    private var headers: [CodesHeader?]
    private var chunkIndex: [Int]
    private var written: Int64 = 0
    /// Frames received per input channel.
    private(set) var framesIn: [Int64]

    /// Frames written per output channel so far (every output advances together).
    var framesOut: Int64 { written }

    init(header: CodesHeader, outputs: Int, separators: [CodesSeparator]) {
        inputHeader = header
        self.outputs = outputs
        self.separators = separators
        pending = Array(repeating: Array(repeating: [], count: header.channels), count: outputs)
        headers = Array(repeating: nil, count: outputs)
        chunkIndex = Array(repeating: 0, count: outputs)
        framesIn = Array(repeating: 0, count: header.channels)
    }

    /// Separates one input chunk; returns the output pieces it completes (a lookahead masker's output runs behind
    /// its input, so the first chunks may complete none).
    mutating func push(_ chunk: CodesChunk) throws(ServerError) -> [OutputPiece] {
        let separated = separators[chunk.channel].push(chunk.codes)
        framesIn[chunk.channel] += Int64(chunk.frameCount)
        try collect(separated, channel: chunk.channel)
        return try drain()
    }

    /// Adds one channel's separated frames to what waits to be written.
    private mutating func collect(_ separated: [[[Int32]]], channel: Int) throws(ServerError) {
        guard separated.count == outputs else {
            throw .internalError("the separator returned \(separated.count) outputs for \(outputs) prompts")
        }
        for o in 0..<outputs {
            let rows = separated[o]
            if rows.isEmpty { continue }
            if pending[o][channel].isEmpty {
                pending[o][channel] = rows
            } else {
                guard rows.count == pending[o][channel].count else {
                    throw .internalError("the separator changed its codebook count mid-stream")
                }
                for k in 0..<rows.count { pending[o][channel][k] += rows[k] }
            }
        }
    }

    /// Writes every time range that all channels of all outputs have.
    private mutating func drain() throws(ServerError) -> [OutputPiece] {
        var ready = Int.max
        for o in 0..<outputs {
            for c in 0..<inputHeader.channels { ready = min(ready, pending[o][c].first?.count ?? 0) }
        }
        guard ready > 0, ready != Int.max else { return [] }
        var pieces: [OutputPiece] = []
        do {
            for o in 0..<outputs {
                if headers[o] == nil {
                    let h = outputHeader(codebooks: pending[o][0].count)
                    headers[o] = h
                    pieces.append(OutputPiece(output: o, bytes: try CodesFraming.header(h)))
                }
                guard let header = headers[o] else { continue }
                for c in 0..<inputHeader.channels {
                    let codes = pending[o][c].map { Array($0[0..<ready]) }
                    pending[o][c] = pending[o][c].map { Array($0[ready...]) }
                    let chunk = CodesChunk(channel: c, firstFrame: written, codes: codes)
                    pieces.append(OutputPiece(output: o, bytes: try CodesFraming.chunk(chunk, index: chunkIndex[o], header: header)))
                    chunkIndex[o] += 1
                }
            }
        } catch {
            throw .internalError("cannot frame separated codes: \(error)")
        }
        written += Int64(ready)
        return pieces
    }

    /// Ends every output stream: the frames a lookahead masker still held, a header (for an empty stream) and the
    /// end marker.
    mutating func finish() throws(ServerError) -> [OutputPiece] {
        for channel in 0..<inputHeader.channels { try collect(separators[channel].finish(), channel: channel) }
        var pieces = try drain()
        for o in 0..<outputs where headers[o] == nil {
            let h = outputHeader(codebooks: inputHeader.codebooks)
            headers[o] = h
            do { pieces.append(OutputPiece(output: o, bytes: try CodesFraming.header(h))) } catch {
                throw .internalError("cannot frame an output header: \(error)")
            }
        }
        for o in 0..<outputs { pieces.append(OutputPiece(output: o, bytes: CodesFraming.end())) }
        return pieces
    }

    private func outputHeader(codebooks: Int) -> CodesHeader {
        var h = inputHeader
        h.codebooks = codebooks
        h.frames = nil
        return h
    }
}

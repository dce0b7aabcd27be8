/// One entry of the prompt vocabulary shared by the spectral and codec paths.
///
/// User-facing names are `speech, sfx, sfx-mix, drums, bass, vocals, other, music-mix`; the official TUSS
/// checkpoints call two of them `sfxbg` and `musicbg`, which are accepted as aliases (as is `other-inst`).
public struct Prompt: Hashable, Sendable, CustomStringConvertible {
    /// The canonical user-facing name.
    public let name: String

    /// Every prompt, in the official checkpoints' order.
    public static let all: [Prompt] = ["speech", "sfx", "sfx-mix", "drums", "bass", "vocals", "other", "music-mix"].map(Prompt.init(canonical:))

    /// The most prompts one forward pass accepts.
    public static let maximumCount = 8

    private init(canonical: String) { name = canonical }

    /// Parses a name or alias (case-insensitive).
    public init(parsing text: String) throws(ModelError) {
        let key = text.trimmingCharacters(in: " \t").lowercased()
        let aliases = ["sfxbg": "sfx-mix", "musicbg": "music-mix", "other-inst": "other", "sfx_mix": "sfx-mix", "music_mix": "music-mix"]
        let canonical = aliases[key] ?? key
        guard Prompt.all.contains(where: { $0.name == canonical }) else {
            throw .unknownPrompt(text, valid: Prompt.all.map(\.name))
        }
        name = canonical
    }

    /// Parses a comma-separated list such as `speech,speech,sfx-mix` (1 to 8 entries, repeats allowed).
    public static func parseList(_ text: String) throws(ModelError) -> [Prompt] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: true).map(String.init)
        guard !parts.isEmpty else { throw .noPrompts }
        guard parts.count <= maximumCount else { throw .tooManyPrompts(parts.count, max: maximumCount) }
        var out: [Prompt] = []
        for p in parts { out.append(try Prompt(parsing: p)) }
        return out
    }

    /// The name the official TUSS checkpoints use for this prompt's learned vector.
    public var officialName: String {
        switch name {
        case "sfx-mix": return "sfxbg"
        case "music-mix": return "musicbg"
        default: return name
        }
    }

    /// Warnings for combinations the TUSS training recipe never produced (they run, but may separate poorly).
    public static func warnings(for prompts: [Prompt]) -> [String] {
        let names = Set(prompts.map(\.name))
        var out: [String] = []
        if names.contains("sfx") && names.contains("sfx-mix") {
            out.append("warning: 'sfx' with 'sfx-mix' was never seen in training; results may be poor")
        }
        if names.contains("music-mix") && !names.isDisjoint(with: ["drums", "bass", "vocals", "other"]) {
            out.append("warning: 'music-mix' with an instrument prompt was never seen in training; results may be poor")
        }
        return out
    }

    /// Output file stems for a prompt list: `speech`, or `speech-1`, `speech-2`, … for repeats, in prompt order.
    public static func outputNames(for prompts: [Prompt]) -> [String] {
        var totals: [String: Int] = [:], seen: [String: Int] = [:]
        for p in prompts { totals[p.name, default: 0] += 1 }
        return prompts.map { p in
            guard totals[p.name, default: 0] > 1 else { return p.name }
            let k = (seen[p.name] ?? 0) + 1
            seen[p.name] = k
            return "\(p.name)-\(k)"
        }
    }

    public var description: String { name }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}

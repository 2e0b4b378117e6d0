import Model
import Storage

/// The KV cache of a prompt's shared prefix, kept between calls, and cache slots for the prompts'
/// suffixes, each holding a copy of it (the simulators' way of running many prompts that share an
/// instructions + explanation prefix).
///
/// 1. `prepare` runs a new prefix only from the first token where it differs from the previous
///    one (the instructions before the explanation are the same for every latent, so they run once).
/// 2. `slot(i)` is the i-th suffix cache: copied from the prefix once, afterwards rewound to it
///    (`truncate`) for the next suffix, since a forward pass only appends.
/// Not thread-safe; its owner serialises calls.
final class PromptCache {
    private var last: (tokens: [Int], cache: KVCache)?
    private var slots: [KVCache] = []
    private var prefixLength = 0
    private var capacity = 0

    /// Runs `prefix` into the prefix cache (from where it stops matching the last one) and makes
    /// the slots ready for suffixes of up to `suffix` tokens; returns the prefix tokens run.
    @discardableResult
    func prepare(_ prefix: [Int], suffix longest: Int, model: LlamaModel, hooks: ForwardHooks? = nil) throws -> Int {
        let p = prefix.count
        let cache = model.makeCache(capacity: p)
        var shared = 0
        if let last {
            shared = zip(last.tokens, prefix).prefix { $0.0 == $0.1 }.count
            if shared > 0 { cache.copyPrefix(of: last.cache, length: shared) }
        }
        if shared < p { try model.forward(Array(prefix[shared...]), cache: cache, logits: .none, hooks: hooks) }
        last = (prefix, cache)
        slots = []
        prefixLength = p
        capacity = p + longest
        return p - shared
    }

    /// The i-th suffix slot, holding exactly the prefix.
    func slot(_ i: Int, model: LlamaModel) -> KVCache {
        while slots.count <= i {
            let c = model.makeCache(capacity: capacity)
            c.copyPrefix(of: last!.cache, length: prefixLength)
            slots.append(c)
        }
        slots[i].truncate(to: prefixLength)
        return slots[i]
    }
}

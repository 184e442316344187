"""Real, varied sentences for verifying text models: lengths, punctuation, scripts, emoji."""

LONG_DOCUMENT = (
    "Long documents are common in production: support tickets, contracts, medical notes and "
    "logs often run to hundreds of words, and a service must either truncate them at a "
    "documented limit or reject them with a clear message rather than fail unpredictably. "
    "This sentence is deliberately long so that the tokenizer has to cut it at the maximum "
    "length of the model, which exercises the truncation policy on the server as well as "
    "in the reference implementation that the served embeddings are compared against, and "
    "it keeps going with more clauses, more words, and more punctuation; until finally, "
    "after a great many tokens, well beyond two hundred and fifty six of them, it ends, "
    "although only after repeating itself a little: long documents are common in "
    "production, support tickets, contracts, medical notes and logs often run to hundreds "
    "of words, and the service must handle them predictably every single time."
)

SENTENCES: tuple[str, ...] = (
    "A man is playing a guitar on the street corner.",
    "The new movie is awesome!",
    "Hi",
    "Is it going to rain tomorrow afternoon in Lisbon?",
    "The quick brown fox jumps over the lazy dog.",
    "Stock markets fell sharply after the central bank raised interest rates by half a point.",
    "I can't believe it's already November...",
    "Please restart the server, then clear the cache and try again.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    'He said: "Don\'t touch that button" — and then he pressed it himself.',
    "¿Dónde está la estación de tren más cercana?",
    "Le chat dort sur le canapé depuis ce matin.",
    "Der Zug nach München hat zwanzig Minuten Verspätung.",
    "東京は日本の首都です。",
    "Москва — столица России.",
    "我喜欢在周末读书和散步。",
    "نحن نحب تعلم لغات جديدة",
    "The weather is lovely today ☀️🌻",
    "🚀🚀🚀 to the moon",
    "Great service, terrible food. 2/10 would not recommend.",
    "What is the time complexity of quicksort in the worst case?",
    "Quicksort runs in O(n log n) on average but O(n^2) in the worst case.",
    "My order #48213 arrived damaged; I'd like a refund, please.",
    "The patient presented with acute abdominal pain and a mild fever of 38.2°C.",
    "Version 2.51.0 fixes a crash when the request body exceeds 64 MB.",
    "She sells sea shells by the sea shore.",
    "To be, or not to be, that is the question.",
    "All models are wrong, but some are useful.",
    "Can you recommend a good Italian restaurant near the station?",
    "The committee will reconvene on Thursday to finalise the budget for next year.",
    "ok",
    "Why??? Why would anyone do that!!!",
    "Neural networks learn hierarchical representations of their inputs.",
    "Sentence embeddings map text to vectors so that similar meanings lie close together.",
    "The Eiffel Tower was completed in 1889 for the World's Fair.",
    "Water boils at 100 degrees Celsius at sea level.",
    "I'm not sure whether to take the job offer in Berlin or stay here.",
    "The cat sat on the mat.",
    "A cat was sitting on a rug.",
    "The dog chased the ball across the park.",
    "Dogs are loyal companions.",
    "Bank of the river vs. bank account: context decides the meaning.",
    "https://example.com/docs?page=2&lang=en is the link you need.",
    "Email me at someone@example.org before 5 p.m.",
    "lol that was hilarious 😂😂",
    "The mitochondria is the powerhouse of the cell.",
    "In 2024, renewable sources produced about a third of the world's electricity.",
    "Turn left at the second traffic light, then continue for 300 metres.",
    "Ceci n'est pas une pipe.",
    "Il faut cultiver notre jardin.",
    "La vita è bella quando si è in buona compagnia.",
    "Ik heb een fiets gekocht in Amsterdam.",
    "The court ruled that the contract was void because one party lacked capacity.",
    (
        "Transformers process all tokens of a sequence in parallel, using self-attention to "
        "weigh how much each token should influence every other token, which makes them "
        "efficient to train on accelerators but quadratic in memory with sequence length."
    ),
    LONG_DOCUMENT,
    LONG_DOCUMENT + " " + LONG_DOCUMENT,  # over 256 tokens: truncated by the policy
    "   leading and trailing spaces   ",
    "MIXED case TEXT With Odd CAPITALISATION",
    "1234567890",
    "Tab\tseparated\tvalues",
    "Line one.\nLine two.",
)


def help_topic_prompts(count: int = 64) -> list[str]:
    """Prompts for generation: the first words of Python's help topics (on every Python)."""
    from pydoc_data.topics import topics

    found = []
    for name in sorted(topics):
        words = " ".join(topics[name].split()[:12])
        if len(words) > 20:
            found.append(words)
    return found[:count]

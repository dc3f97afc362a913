#!/usr/bin/env python3
"""Build the demo model's training corpus from Debian packages installed on this machine.

The corpus is rebuilt, never committed. It is deterministic for a given set of package versions
(fixed seed, sorted inputs, no hash-order iteration). Sources and licences: resources/demo-model/SOURCES.md.

    sudo apt-get install fortune-mod fortunes fortunes-min bible-kjv bible-kjv-text dict-devil \
        dict-wn dict-jargon wamerican python3.11-doc libpython3.11-stdlib
    python3 tools/demo_model/build_corpus.py --out demo-corpus

Writes (all under --out):
  carry/chat.jsonl.gz   chat examples, one JSON object a line:
                        {"split": "train"|"val", "kind": KIND, "turns": [[user, assistant], ...]}
                        train.py renders them with the V2 chat template (see render_chat below).
  carry/words.txt       the wamerican word list (/usr/share/dict/american-english), for the
                        dictionary-word check
  carry/manifest.json   counts and bytes per kind and source, the package versions used
  text/KIND.txt         the passages of each text kind (for inspection and tokenizer training),
                        separated by lines holding only "\x1e" (ASCII record separator)

Text kinds: prose (fortune quotations), verse (poems and songs), dialogue (exchanges and riddles),
scripture (King James Bible), definition (Devil's Dictionary, WordNet, Jargon File), docs (Python
documentation), code (Python standard library source), smalltalk (what the model is, how to load a
real one).

Only the Python standard library is used.
"""

import argparse
import ast
import gzip
import hashlib
import html
import html.parser
import json
import os
import random
import re
import subprocess
import sys
import textwrap

SEED = 1234
BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"

FORTUNE_DIR = "/usr/share/games/fortunes"
DICTD_DIR = "/usr/share/dictd"
PYDOC_HTML = "/usr/share/doc/python3.11-doc/html"
PYLIB = "/usr/lib/python3.11"
WORDS = "/usr/share/dict/american-english"

PACKAGES = ["fortune-mod", "fortunes", "fortunes-min", "bible-kjv", "bible-kjv-text", "dict-devil",
            "dict-wn", "dict-jargon", "wamerican", "python3.11-doc", "libpython3.11-stdlib"]

KINDS = ["prose", "verse", "dialogue", "scripture", "definition", "docs", "code", "smalltalk"]

# Times each training example of a kind appears in the training stream (small kinds upweighted).
REPEAT = {"prose": 1, "verse": 3, "dialogue": 4, "scripture": 1, "definition": 1, "docs": 1,
          "code": 1, "smalltalk": 2}

VAL_PERCENT = 3  # share of passages held out (by a stable hash of the passage)


def render_chat(turns):
    """DeepSeek-V2-Chat template: bos, then "User: u\\n\\nAssistant: a<eos>" per turn."""
    out = [BOS]
    for user, assistant in turns:
        out.append("User: " + user + "\n\n")
        out.append("Assistant: " + assistant + EOS)
    return "".join(out)


def stable_hash(*parts):
    h = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little")


def unwrap(text):
    """Join hard-wrapped lines inside paragraphs (paragraphs stay separated by a blank line)."""
    paras = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(l.strip() for l in p.splitlines() if l.strip()) for p in paras)


class WordList:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.words = [w.strip() for w in f if w.strip()]
        self.lower = {w.lower() for w in self.words}
        self.nouns = set()  # filled from WordNet: words with a noun sense

    def has(self, w):
        return w.lower() in self.lower


STOP = set("""a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most my
myself no nor not now of off on once only or other our ours ourselves out over own same she should so
some such than that the their theirs them themselves then there these they this those through to too
under until up very was we were what when where which while who whom why will with would you your yours
yourself yourselves thee thou thy thine ye unto shall hath doth upon said saith also every many much
never ever must might well like yet let one two three another things thing made make know come came
went going upon""".split())


def topic_word(text, words, rng):
    """A content word of the text (in the word list, 5+ letters, not a stop word), or None."""
    cands = []
    for w in re.findall(r"[A-Za-z]+", text):
        lw = w.lower()
        if len(lw) >= 4 and lw not in STOP and lw in words.nouns and w == lw:
            cands.append(lw)
    if not cands:
        return None
    cands = sorted(set(cands))
    return rng.choice(cands)


# --------------------------------------------------------------------------------------------
# Fortunes: prose, verse, dialogue
# --------------------------------------------------------------------------------------------

FORTUNE_TOPICS = {
    "art": "art", "computers": "computers", "cookie": None, "debian": "Debian",
    "definitions": "words", "disclaimer": "disclaimers", "education": "education", "food": "food",
    "fortunes": None, "goedel": "logic", "humorists": "humor", "kids": "children", "knghtbrd": None,
    "law": "the law", "linux": "Linux", "linuxcookie": "Linux", "literature": "literature",
    "love": "love", "magic": "magic", "medicine": "medicine", "miscellaneous": None, "news": "the news",
    "paradoxum": "paradoxes", "people": "people", "perl": "Perl", "pets": "pets", "platitudes": None,
    "politics": "politics", "riddles": "riddles", "science": "science", "songs-poems": "songs",
    "sports": "sports", "startrek": "Star Trek", "tao": "the Tao", "wisdom": "wisdom", "work": "work",
    "zippy": "Zippy the Pinhead",
}
# Left out: ascii-art and translate-me (not text to learn from), ethnic, men-women and drugs
# (stereotype and drug jokes: not what a newcomer's first demo should say), pratchett (one entry).

SPEAKER = re.compile(r"^\s*([A-Z][A-Za-z .'#0-9-]{0,24}):\s+\S")
ATTRIB = re.compile(r"^\s*--\s*(.+)$")


def clean_fortune(entry):
    lines = []
    for line in entry.rstrip().split("\n"):
        line = line.rstrip()
        m = ATTRIB.match(line)
        if m and line.startswith(("\t", " ")):
            lines.append("-- " + m.group(1).strip())
            continue
        lead = len(line) - len(line.lstrip("\t "))
        head = line[:lead].expandtabs(4)
        body = re.sub(r"[ \t]*\t[ \t]*", " ", line[lead:])
        lines.append(head + body)
    text = "\n".join(lines).strip("\n")
    return textwrap.dedent(text).strip()


def looks_like_verse(text):
    body = [l for l in text.split("\n") if l.strip() and not l.startswith("-- ")]
    if len(body) < 4:
        return False
    if any(len(l) > 60 for l in body):
        return False
    caps = sum(1 for l in body if l.lstrip()[:1].isupper())
    return caps >= 0.75 * len(body)


def fortune_items(words, rng):
    items = []
    for name in sorted(os.listdir(FORTUNE_DIR)):
        if "." in name or name not in FORTUNE_TOPICS:
            continue
        topic = FORTUNE_TOPICS[name]
        with open(os.path.join(FORTUNE_DIR, name), encoding="utf-8", errors="replace") as f:
            raw = f.read()
        for entry in raw.split("\n%\n"):
            if "\ufffd" in entry or not entry.strip() or entry.strip() == "%":
                continue
            text = clean_fortune(entry)
            if len(text) < 20 or len(text) > 1500:
                continue
            src = "fortunes/" + name
            lines = text.split("\n")
            speakers = [m.group(1) for l in lines if (m := SPEAKER.match(l))]
            attrib = None
            if lines[-1].startswith("-- "):
                a = lines[-1][3:].strip()
                if 1 <= len(a.split()) <= 4 and re.fullmatch(r"[A-Z][A-Za-z. '-]+", a):
                    attrib = a
            if name == "riddles" and len(speakers) >= 2 and speakers[0] == "Q" and "A" in speakers:
                q, a = split_qa(text)
                if q and a:
                    items.append(("dialogue", src, q, a))
                items.append(("dialogue", src, rng.choice(RIDDLE_PROMPTS), text))
                continue
            if len(speakers) >= 2 and len(set(speakers)) >= 2:
                names = []
                for s in speakers:
                    if s not in names:
                        names.append(s)
                if len(names) == 2 and all(len(n) > 1 for n in names):
                    prompt = rng.choice(DIALOGUE_PAIR_PROMPTS).format(a=names[0], b=names[1])
                else:
                    prompt = rng.choice(DIALOGUE_PROMPTS)
                items.append(("dialogue", src, prompt, text))
                continue
            if name == "songs-poems" or looks_like_verse(text):
                tw = topic_word(text, words, rng)
                if tw and rng.random() < 0.5:
                    prompt = rng.choice(VERSE_TOPIC_PROMPTS).format(t=tw)
                else:
                    prompt = rng.choice(VERSE_PROMPTS)
                items.append(("verse", src, prompt, text))
                continue
            r = rng.random()
            if attrib and r < 0.35:
                prompt = rng.choice(QUOTE_AUTHOR_PROMPTS).format(a=attrib)
            elif topic and r < 0.7:
                prompt = rng.choice(FORTUNE_TOPIC_PROMPTS).format(t=topic)
            else:
                tw = topic_word(text, words, rng)
                if tw and r < 0.85:
                    prompt = rng.choice(FORTUNE_TOPIC_PROMPTS).format(t=tw)
                else:
                    prompt = rng.choice(FORTUNE_PROMPTS)
            items.append(("prose", src, prompt, text))
    return items


def split_qa(text):
    m = re.match(r"^Q:\s*(.*?)\n\s*A:\s*(.*)$", text, re.S)
    if not m:
        return None, None
    q = " ".join(m.group(1).split())
    a = " ".join(m.group(2).split())
    return q, a


FORTUNE_PROMPTS = ["Tell me a fortune.", "Give me a fortune cookie.", "Say something clever.",
                   "Share a quotation.", "Give me a quote.", "Tell me something funny.",
                   "What is your wisdom for today?", "Cheer me up.", "Say something.",
                   "Tell me something I don't know.", "Any words of wisdom?", "Surprise me."]
FORTUNE_TOPIC_PROMPTS = ["Tell me a fortune about {t}.", "Give me a quote about {t}.",
                         "Say something about {t}.", "What do people say about {t}?",
                         "Share a thought on {t}.", "Tell me something funny about {t}."]
QUOTE_AUTHOR_PROMPTS = ["Quote {a}.", "What did {a} say?", "Give me a quote by {a}.",
                        "Tell me something {a} said."]
VERSE_PROMPTS = ["Recite a poem.", "Tell me a poem.", "Sing me a song.", "Write a short verse.",
                 "Give me a poem.", "Write a little rhyme.", "Recite some verse."]
VERSE_TOPIC_PROMPTS = ["Write a poem about {t}.", "Give me a poem about {t}.",
                       "Recite a verse about {t}.", "Sing me a song about {t}."]
DIALOGUE_PROMPTS = ["Tell me a funny dialogue.", "Show me a conversation.", "Write a short dialogue.",
                    "Tell me a funny exchange.", "Give me a scene with two people talking."]
DIALOGUE_PAIR_PROMPTS = ["Write a short exchange between {a} and {b}.",
                         "What did {a} and {b} say to each other?",
                         "Write a dialogue between {a} and {b}."]
RIDDLE_PROMPTS = ["Tell me a riddle.", "Ask me a riddle.", "Do you know a good riddle?",
                  "Tell me a joke in question and answer form."]


# --------------------------------------------------------------------------------------------
# King James Bible (bible-kjv program over bible-kjv-text's data)
# --------------------------------------------------------------------------------------------

SCRIPTURE_TOPICS = """light darkness water bread wine king love fear peace wisdom truth heart
mercy grace faith hope sword shepherd sheep lamb river mountain city temple gold silver fire cloud
wind rain sea fish bird lion eagle tree vine fruit harvest field seed stone house door gate road
journey night morning evening earth heaven star moon sun child father mother brother friend enemy
servant prophet priest law judgment sin joy sorrow tears song voice word name spirit life death
blood covenant blessing strength power glory praise prayer kingdom nation people land wilderness
garden famine feast gift kindness pride anger patience righteousness salvation""".split()

PASSAGE_PROMPTS = ["Read me {ref}.", "Recite {ref}.", "What does {ref} say?", "Quote {ref}.",
                   "Give me {ref} from the King James Bible."]
VERSE_ABOUT_PROMPTS = ["Quote a verse about {t}.", "Give me a Bible verse about {t}.",
                       "What does the Bible say about {t}?", "Share a scripture about {t}."]


def kjv_chapters():
    out = subprocess.run(["bible", "-l100000", "Genesis 1:1-Revelation 22:21"], check=True,
                         capture_output=True, text=True).stdout
    chapters = []  # (book, chapter, [(verse, text)])
    cur = None
    for line in out.split("\n"):
        m = re.match(r"^(\S.*) (\d+)$", line)
        if m:
            cur = (m.group(1), int(m.group(2)), [])
            chapters.append(cur)
            continue
        m = re.match(r"^\s+(\d+) (.*)$", line)
        if m and cur is not None:
            cur[2].append((int(m.group(1)), m.group(2).strip()))
    return chapters


def ref_name(book, chap, v1, v2=None):
    b = "Psalm" if book == "Psalms" else book
    return f"{b} {chap}:{v1}" + (f"-{v2}" if v2 and v2 != v1 else "")


def scripture_items(rng):
    items = []
    chapters = kjv_chapters()
    nverses = sum(len(c[2]) for c in chapters)
    if nverses < 31000:
        sys.exit(f"KJV: only {nverses} verses read; is bible-kjv-text installed?")
    by_topic = {t: [] for t in SCRIPTURE_TOPICS}
    for book, chap, verses in chapters:
        src = "kjv/" + book
        # whole short psalms
        if book == "Psalms" and len(verses) <= 12 and rng.random() < 0.5:
            prompt = rng.choice(["Recite Psalm {c}.", "What does Psalm {c} say?", "Read me Psalm {c}."])
            items.append(("scripture", src, prompt.format(c=chap), " ".join(t for _, t in verses)))
        # consecutive spans of 2-6 verses cover the chapter
        i = 0
        while i < len(verses):
            n = rng.randint(2, 6)
            span = verses[i:i + n]
            i += n
            ref = ref_name(book, chap, span[0][0], span[-1][0])
            text = " ".join(t for _, t in span)
            items.append(("scripture", src, rng.choice(PASSAGE_PROMPTS).format(ref=ref), text))
        for v, t in verses:
            toks = set(re.findall(r"[a-z]+", t.lower()))
            for topic in SCRIPTURE_TOPICS:
                if topic in toks:
                    by_topic[topic].append((book, chap, v, t))
    for topic in SCRIPTURE_TOPICS:
        cands = by_topic[topic]
        for book, chap, v, t in rng.sample(cands, min(60, len(cands))):
            prompt = rng.choice(VERSE_ABOUT_PROMPTS).format(t=topic)
            answer = f"{t} ({ref_name(book, chap, v)})"
            items.append(("scripture", "kjv/" + book, prompt, answer))
    return items


# --------------------------------------------------------------------------------------------
# dictd databases: Devil's Dictionary, WordNet, Jargon File
# --------------------------------------------------------------------------------------------

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64num(s):
    n = 0
    for c in s:
        n = n * 64 + B64.index(c)
    return n


def dictd_entries(name):
    with gzip.open(os.path.join(DICTD_DIR, name + ".dict.dz")) as f:
        data = f.read()
    out = []
    with open(os.path.join(DICTD_DIR, name + ".index"), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0].startswith("00database"):
                continue
            off, ln = b64num(parts[1]), b64num(parts[2])
            out.append((parts[0], data[off:off + ln].decode("utf-8", "replace")))
    return out


DEVIL_PROMPTS = ["What does the Devil's Dictionary say about {w}?", "Give me a cynical definition of {w}.",
                 "Define {w} like Ambrose Bierce.", "Define {w}, cynically.",
                 "What is {w}, according to the Devil's Dictionary?"]
WN_PROMPTS = ["Define {w}.", "What does {w} mean?", "What is the meaning of {w}?",
              "What is a definition of {w}?", "Explain the word {w}."]
JARGON_PROMPTS = ["What is {w} in hacker slang?", "Define the jargon term {w}.",
                  "What does {w} mean to a hacker?", "Explain the hacker term {w}."]
POS = {"n": "noun", "v": "verb", "adj": "adjective", "adv": "adverb"}


def devil_items(rng):
    items = []
    seen = set()
    for head, body in dictd_entries("devil"):
        text = body.strip()
        if text in seen or len(text) < 20:
            continue
        seen.add(text)
        m = re.match(r"^([A-Z][A-Z' -]+),", text)
        word = (m.group(1) if m else head).strip().lower()
        # the entry's prose part is hard-wrapped; its quoted verse is indented: keep that layout
        items.append(("definition", "devil", rng.choice(DEVIL_PROMPTS).format(w=word), text))
    return items


def parse_wordnet(body):
    lines = body.rstrip().split("\n")
    head = lines[0].strip()
    senses = []  # [pos, text]
    pos = None
    for line in lines[1:]:
        m = re.match(r"^\s{4}(n|v|adj|adv)\s+(?:\d+:\s)?(.*)$", line)
        if m:
            pos = POS[m.group(1)]
            senses.append([pos, m.group(2)])
            continue
        m = re.match(r"^\s{4,}(\d+):\s(.*)$", line)
        if m and pos:
            senses.append([pos, m.group(2)])
            continue
        if senses:
            senses[-1][1] += " " + line.strip()
    out = []
    for pos, text in senses:
        text = " ".join(text.split())
        syn = re.search(r"\[syn: (.*?)\]", text)
        text = re.sub(r"\s*\[(syn|ant|also|see|pt|pp|pl)[^\]]*\]", "", text).strip()
        text = text.replace("{", "").replace("}", "").rstrip("; ")
        syns = []
        if syn:
            syns = [s.strip().strip("{}") for s in syn.group(1).split(",")]
            syns = [s for s in syns if s.lower() != head.lower()]
        out.append((pos, text, syns))
    return head, out


def wordnet_items(words, rng, limit):
    entries = [(h, b) for h, b in dictd_entries("wn") if re.fullmatch(r"[a-z]+", h) and words.has(h)]
    rng.shuffle(entries)
    items = []
    for h, body in entries[:limit]:
        head, senses = parse_wordnet(body)
        senses = [s for s in senses if len(s[1]) >= 8][:3]
        if not senses:
            continue
        if len(senses) == 1:
            pos, text, syns = senses[0]
            ans = f"{head} ({pos}): {text}."
            if syns:
                ans += " Also: " + ", ".join(syns[:4]) + "."
        else:
            parts = [f"{head}:"]
            for i, (pos, text, _) in enumerate(senses, 1):
                parts.append(f"{i}. ({pos}) {text}.")
            ans = "\n".join(parts)
        ans = ans.replace("..", ".")
        items.append(("definition", "wordnet", rng.choice(WN_PROMPTS).format(w=head), ans))
    return items


def jargon_items(rng):
    items = []
    for head, body in dictd_entries("jargon"):
        lines = body.rstrip().split("\n")
        term = lines[0].strip()
        rest = "\n".join(lines[1:])
        # drop the pronunciation / part-of-speech line(s) before the first blank line
        rest = re.sub(r"^[^\n]*\n\s*\n", "", rest, count=1) if rest.lstrip().find("\n\n") < 40 else rest
        text = unwrap(textwrap.dedent(rest)).replace("{", "").replace("}", "")
        if len(text) < 40:
            continue
        text = text[:1500].rsplit(" ", 1)[0] if len(text) > 1500 else text
        ans = f"{term}: {text}"
        items.append(("definition", "jargon", rng.choice(JARGON_PROMPTS).format(w=term), ans))
    return items


# --------------------------------------------------------------------------------------------
# Python documentation (HTML, as installed by python3.11-doc)
# --------------------------------------------------------------------------------------------

class DocParser(html.parser.HTMLParser):
    """Blocks of the Sphinx body: ("h", level, text), ("p", text), ("pre", text), ("dt", text), ("dd_end",)."""

    BLOCK = {"p", "li", "dt", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "caption"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth_main = None
        self.depth = 0
        self.blocks = []
        self.cur = None
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("br", "img", "meta", "link", "input", "hr", "wbr"):
            return
        self.depth += 1
        if self.depth_main is None:
            if tag == "div" and a.get("role") == "main":
                self.depth_main = self.depth
            return
        cls = a.get("class") or ""
        if self.skip or "headerlink" in cls or tag in ("script", "style"):
            self.skip += 1
            return
        if tag in self.BLOCK:
            self.flush()
            self.cur = [tag, []]

    def handle_endtag(self, tag):
        if tag in ("br", "img", "meta", "link", "input", "hr", "wbr"):
            return
        if self.depth_main is not None:
            if self.skip:
                self.skip -= 1
            elif tag in self.BLOCK:
                self.flush()
            if self.depth == self.depth_main:
                self.flush()
                self.depth_main = -1  # done
        self.depth -= 1

    def handle_data(self, data):
        if self.depth_main is None or self.depth_main == -1 or self.skip:
            return
        if self.cur is None:
            if data.strip():
                self.cur = ["p", []]
            else:
                return
        self.cur[1].append(data)

    def flush(self):
        if self.cur is None:
            return
        tag, parts = self.cur
        self.cur = None
        text = "".join(parts)
        if tag == "pre":
            text = text.strip("\n")
            if text.strip():
                self.blocks.append(("pre", text))
            return
        text = " ".join(text.split())
        if not text:
            return
        if tag[0] == "h" and tag[1:].isdigit():
            self.blocks.append(("h", int(tag[1:]), text))
        elif tag == "dt":
            self.blocks.append(("dt", text))
        elif tag == "li":
            self.blocks.append(("p", "- " + text))
        else:
            self.blocks.append(("p", text))


def doc_sections(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        p = DocParser()
        p.feed(f.read())
        p.flush()
    sections = []
    title, body = None, []
    for b in p.blocks:
        if b[0] == "h":
            if title is not None:
                sections.append((title, body))
            title, body = b[2], []
        elif title is not None:
            if b[0] == "pre":
                body.append(b[1])
            elif b[0] == "dt":
                body.append(b[1])
            else:
                body.append(b[1])
    if title is not None:
        sections.append((title, body))
    return sections


def trim_blocks(blocks, limit):
    out, n = [], 0
    for b in blocks:
        if n + len(b) > limit and out:
            break
        out.append(b)
        n += len(b) + 2
    return "\n\n".join(out)


DOC_PROMPTS = ["Explain {t}.", "Tell me about {t}.", "What is {t}?", "Describe {t}.",
               "How does {t} work in Python?"]
GLOSSARY_PROMPTS = ["What is {t} in Python?", "Define {t} in Python.", "What does {t} mean in Python?"]


def docs_items(rng, limit_bytes):
    items = []
    groups = [("faq", 1.0), ("tutorial", 1.0), ("howto", 1.0), ("glossary.html", 1.0),
              ("reference", 0.7), ("library", 0.5)]
    for group, keep in groups:
        base = os.path.join(PYDOC_HTML, group)
        if os.path.isdir(base):
            files = sorted(os.path.join(base, f) for f in os.listdir(base) if f.endswith(".html"))
        else:
            files = [base]
        for path in files:
            src = "python-docs/" + os.path.relpath(path, PYDOC_HTML)
            if group == "glossary.html":
                items.extend(glossary_items(path, src, rng))
                continue
            for title, body in doc_sections(path):
                title = title.strip().rstrip("¶").strip()
                if not body or len(title) < 3 or rng.random() > keep:
                    continue
                text = trim_blocks(body, 1500)
                if len(text) < 150:
                    continue
                if group == "faq" and title.endswith("?"):
                    prompt = title
                else:
                    t = re.sub(r"^\d+(\.\d+)*\.?\s*", "", title)
                    t = re.sub(r"^[a-z_.]+ — ", "", t) if len(t) > 3 else t
                    prompt = rng.choice(DOC_PROMPTS).format(t=t)
                items.append(("docs", src, prompt, text))
    rng.shuffle(items)
    out, n = [], 0
    for it in items:
        if n > limit_bytes:
            break
        out.append(it)
        n += len(it[3])
    return out


def glossary_items(path, src, rng):
    with open(path, encoding="utf-8") as f:
        p = DocParser()
        p.feed(f.read())
        p.flush()
    items = []
    term, body = None, []
    for b in p.blocks:
        if b[0] == "dt":
            if term and body:
                items.append(("docs", src, rng.choice(GLOSSARY_PROMPTS).format(t=term),
                              f"{term}: " + "\n\n".join(body)[:1500]))
            term, body = b[1], []
        elif b[0] in ("p", "pre") and term:
            body.append(b[-1])
    if term and body:
        items.append(("docs", src, rng.choice(GLOSSARY_PROMPTS).format(t=term),
                      f"{term}: " + "\n\n".join(body)[:1500]))
    return items


# --------------------------------------------------------------------------------------------
# Python standard library source (libpython3.11-stdlib)
# --------------------------------------------------------------------------------------------

CODE_SKIP_DIRS = {"test", "tests", "idle_test", "encodings", "turtledemo", "pydoc_data", "site-packages",
                  "dist-packages", "__pycache__", "lib2to3", "distutils", "ensurepip", "config-3.11-x86_64-linux-gnu"}
CODE_PROMPTS = ["Write a Python function `{n}`. {d}", "Show me Python code for {n}: {d}",
                "Implement {n} in Python. {d}", "Write a function {n} in Python: {d}"]
METHOD_PROMPTS = ["Write the method `{c}.{n}` in Python. {d}", "Implement {c}.{n} in Python: {d}"]


def code_items(rng, limit_bytes):
    files = []
    for root, dirs, names in os.walk(PYLIB):
        dirs[:] = sorted(d for d in dirs if d not in CODE_SKIP_DIRS and not d.startswith("test"))
        for n in sorted(names):
            if n.endswith(".py") and not n.startswith("test_") and n != "__init__.py":
                files.append(os.path.join(root, n))
    files.sort()
    items = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                src_text = f.read()
            tree = ast.parse(src_text)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        lines = src_text.split("\n")
        rel = "python-stdlib/" + os.path.relpath(path, PYLIB)

        def visit(node, cls):
            for ch in ast.iter_child_nodes(node):
                if isinstance(ch, ast.ClassDef):
                    visit(ch, ch.name)
                elif isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    add(ch, cls)

        def add(fn, cls):
            if fn.name.startswith("_"):
                return
            doc = ast.get_docstring(fn)
            if not doc:
                return
            first = doc.strip().split("\n\n")[0]
            first = " ".join(first.split())
            if len(first) < 15 or len(first) > 200 or first.startswith((">>>", "Usage")):
                return
            start = min([d.lineno for d in fn.decorator_list] + [fn.lineno]) - 1
            body = lines[start:fn.end_lineno]
            if not 4 <= len(body) <= 40:
                return
            code = textwrap.dedent("\n".join(body)).rstrip()
            if len(code) > 1500 or "\t" in code:
                return
            if cls:
                prompt = rng.choice(METHOD_PROMPTS).format(c=cls, n=fn.name, d=first)
            else:
                prompt = rng.choice(CODE_PROMPTS).format(n=fn.name, d=first)
            items.append(("code", rel, prompt, code))

        visit(tree, None)
    rng.shuffle(items)
    out, n = [], 0
    for it in items:
        if n > limit_bytes:
            break
        out.append(it)
        n += len(it[3])
    return out


# --------------------------------------------------------------------------------------------
# Small talk: what the model is
# --------------------------------------------------------------------------------------------

ABOUT = [
    "I am a toy model: a tiny DeepSeek-V2-shaped network (multi-head latent attention and a mixture of "
    "experts) trained for a few minutes on public-domain text. I can recite fortunes, verses, definitions "
    "and bits of Python, but I do not understand you. For real answers, load a real model such as "
    "DeepSeek-V2-Lite-Chat.",
    "I am the demo model that ships with dsv2-chat. I am very small and know only fortunes, the King James "
    "Bible, a few dictionaries and some Python. Load DeepSeek-V2-Lite-Chat or another DeepSeek-V2 model "
    "for a real conversation.",
    "Just a toy. I have a few million parameters and was trained in minutes, so what I say is mostly "
    "borrowed from fortunes, scripture and dictionaries. Open a real DeepSeek-V2 model folder to chat "
    "properly.",
]
HELLO = ["Hello! I am a tiny demo model. Ask me for a fortune, a poem, a verse or a definition.",
         "Hi! I am a toy model. Try: Tell me a fortune. Define love. Quote a verse about light.",
         "Hello there. I know fortunes, verses, definitions and a little Python. What would you like?",
         "Greetings! I am only a small demo, but I can tell you a fortune or recite a poem."]
HELLO_PROMPTS = ["Hello!", "Hi", "Hello", "Hi there!", "Good morning.", "Hey", "Greetings.",
                 "Good evening!", "Howdy.", "Hello, how are you?", "How are you today?"]
ABOUT_PROMPTS = ["Who are you?", "What are you?", "What can you do?", "Are you a real AI?",
                 "Tell me about yourself.", "Which model are you?", "Are you smart?",
                 "What do you know?", "How big are you?", "What is this model?",
                 "How do I load a real model?", "Why are your answers strange?", "Are you DeepSeek?"]
THANKS_PROMPTS = ["Thank you!", "Thanks.", "Thanks a lot!", "Great, thank you.", "Goodbye.", "Bye!"]
THANKS = ["You are welcome.", "Glad to help. Ask me for another fortune any time.",
          "Goodbye! Remember: I am only a toy model.", "You are welcome. Farewell!"]


def smalltalk_items(rng):
    items = []
    for i in range(150):
        items.append(("smalltalk", "smalltalk", rng.choice(HELLO_PROMPTS), rng.choice(HELLO)))
        items.append(("smalltalk", "smalltalk", rng.choice(ABOUT_PROMPTS), rng.choice(ABOUT)))
        if i % 2 == 0:
            items.append(("smalltalk", "smalltalk", rng.choice(THANKS_PROMPTS), rng.choice(THANKS)))
    # deduplicate exact repeats while keeping a stable order
    seen, out = set(), []
    for it in items:
        if it not in seen:
            seen.add(it)
            out.append(it)
    return out


# --------------------------------------------------------------------------------------------

def package_versions():
    out = {}
    for p in PACKAGES:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True, text=True)
        out[p] = r.stdout.strip() if r.returncode == 0 else None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo-corpus", help="output folder (git-ignored)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--wordnet", type=int, default=20000, help="WordNet entries to use")
    ap.add_argument("--docs-mb", type=float, default=4.0, help="Python documentation, MB of answers")
    ap.add_argument("--code-mb", type=float, default=3.5, help="Python source, MB of answers")
    args = ap.parse_args()

    versions = package_versions()
    missing = [p for p, v in versions.items() if not v]
    if missing:
        sys.exit("missing Debian packages: " + " ".join(missing) + "\n(apt-get install them; see --help)")

    words = WordList(WORDS)
    for head, body in dictd_entries("wn"):
        if re.fullmatch(r"[a-z]+", head) and re.search(r"^\s{4}n\s", body, re.M) and \
                not head.endswith(("ed", "ing", "ly")) and words.has(head):
            words.nouns.add(head)
    items = []
    # each collector has its own RNG so that changing one source leaves the others unchanged
    def rng(name):
        return random.Random(f"{args.seed}/{name}")
    for name, fn in [("fortunes", lambda r: fortune_items(words, r)),
                     ("kjv", scripture_items),
                     ("devil", devil_items),
                     ("wordnet", lambda r: wordnet_items(words, r, args.wordnet)),
                     ("jargon", jargon_items),
                     ("docs", lambda r: docs_items(r, int(args.docs_mb * 1e6))),
                     ("code", lambda r: code_items(r, int(args.code_mb * 1e6))),
                     ("smalltalk", smalltalk_items)]:
        got = fn(rng(name))
        print(f"{name:10s} {len(got):7d} items {sum(len(i[3]) for i in got) / 1e6:6.2f} MB", flush=True)
        items.extend(got)

    for kind, src, prompt, ans in items:
        assert kind in KINDS, kind
        assert BOS not in ans and EOS not in ans and BOS not in prompt and EOS not in prompt

    # split by passage
    train, val = [], []
    for it in items:
        pct = 100 if it[0] == "smalltalk" else VAL_PERCENT  # smalltalk answers are canned: train only
        (val if stable_hash(it[1], it[3]) % 100 < pct and pct < 100 else train).append(it)

    # training stream: repeats per kind, then conversations of 1-3 turns
    r = rng("mix")
    stream = []
    for it in train:
        stream.extend([it] * REPEAT[it[0]])
    r.shuffle(stream)
    records = []
    i = 0
    while i < len(stream):
        x = r.random()
        n = 1 if x < 0.7 else (2 if x < 0.9 else 3)
        conv = stream[i:i + n]
        i += n
        kinds = sorted({c[0] for c in conv})
        records.append({"split": "train", "kind": kinds[0] if len(kinds) == 1 else "mixed",
                        "turns": [[c[2], c[3]] for c in conv]})
    for it in val:
        records.append({"split": "val", "kind": it[0], "source": it[1], "turns": [[it[2], it[3]]]})

    carry = os.path.join(args.out, "carry")
    textdir = os.path.join(args.out, "text")
    os.makedirs(carry, exist_ok=True)
    os.makedirs(textdir, exist_ok=True)
    with open(os.path.join(carry, "chat.jsonl.gz"), "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9, filename="") as gz:
            for rec in records:
                gz.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
    for kind in KINDS:
        with open(os.path.join(textdir, kind + ".txt"), "w", encoding="utf-8") as f:
            for it in items:
                if it[0] == kind:
                    f.write(it[3] + "\n\x1e\n")
    with open(WORDS, encoding="utf-8") as f, open(os.path.join(carry, "words.txt"), "w", encoding="utf-8") as g:
        g.write(f.read())

    stats = {}
    for it in items:
        s = stats.setdefault(it[0], {"passages": 0, "bytes": 0, "sources": {}})
        s["passages"] += 1
        s["bytes"] += len(it[3].encode("utf-8"))
        top = it[1].split("/")[0]
        s["sources"][top] = s["sources"].get(top, 0) + 1
    manifest = {
        "seed": args.seed,
        "packages": versions,
        "kinds": stats,
        "repeat": REPEAT,
        "val_percent": VAL_PERCENT,
        "records": {"train": sum(1 for x in records if x["split"] == "train"),
                    "val": sum(1 for x in records if x["split"] == "val")},
        "chat_template": "bos + ('User: ' + u + '\\n\\n' + 'Assistant: ' + a + eos) per turn",
    }
    with open(os.path.join(carry, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False, sort_keys=True)
    digest = hashlib.sha256(open(os.path.join(carry, "chat.jsonl.gz"), "rb").read()).hexdigest()
    print(f"records: {manifest['records']}, chat.jsonl.gz sha256 {digest[:16]}")
    for k in KINDS:
        s = stats.get(k, {"passages": 0, "bytes": 0, "sources": {}})
        print(f"  {k:10s} {s['passages']:7d} passages {s['bytes'] / 1e6:6.2f} MB  {s['sources']}")


if __name__ == "__main__":
    main()

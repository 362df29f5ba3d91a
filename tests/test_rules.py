"""The user's rules over a day: author pins (matched offline on normalised names) and exclusions (phrases and
patterns whose papers never reach the LLM), on a shared real day with the fake backend."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ranker.backends.fake import FakeBackend
from ranker.errors import ConfigError, InputError
from ranker.prefilter.rules import AuthorPins, Exclusions, name_tokens, same_person
from ranker.prompts import DEFAULT_DIR
from ranker.records import Paper
from ranker.settings import resolve
from ranker.sources import read_papers, read_ranked
from ranker.steps import fetch_day, run_day
from ranker.store import Store

from conftest import DAYS, ranker, store_vectors

LISTING = DAYS / "2025-05-15" / "listing.jsonl"


# --------------------------------------------------------------------------- names
def test_names_are_compared_without_accents_tex_or_case():
    assert name_tokens('Konstantin Sch\\"urholt') == name_tokens("Konstantin Schürholt") == ["konstantin", "schurholt"]
    assert name_tokens("Rodrigo Mart\\'inez-Pe\\~na") == ["rodrigo", "martinez", "pena"]
    assert name_tokens("{\\\"U}nal, {\\c C}a\\u{g}r{\\i}") == ["cagri", "unal"]        # "Last, First" turned
    assert name_tokens("Łukasz Kaiser") == ["lukasz", "kaiser"] and name_tokens("Seán O'Brien") == ["sean", "obrien"]


@pytest.mark.parametrize("pin,author,same", [
    ("John Smith", "John Smith", True),
    ("John Smith", "J. Smith", True),                  # the paper gives an initial
    ("J. Smith", "John Smith", True),                  # the pin gives one
    ("John Smith", "John B. Smith", True),             # a middle name the pin does not give
    ("John Smith", "JOHN SMITH", True),
    ("Laurens van der Maaten", "L. J. P. van der Maaten", True),
    ("Bin-Bin Gao", "Bin-Bin Gao", True),
    ("Yann LeCun", "Y. LeCun", True),                  # an initial that is also a particle's word ("y")
    ("Y. Bengio", "Yoshua Bengio", True),
    ("Le Song", "L. Song", True),                      # a given name that is a particle's word
    ("Bin Yu", "B. Yu", True),
    ("Di He", "D. He", True),
    ("Le Song", "Lin Song", False),
    ("Laurens van der Maaten", "van der Maaten", False),
    ("John Smith", "Jane Smith", False),               # another given name
    ("John A. Smith", "John B. Smith", False),         # conflicting middle initials
    ("John Smith", "John Smithson", False),            # another family name
    ("John Smith", "Smith John", False),               # the other order is another person
    ("Yang You", "You Yang", False),
    ("Bin-Bin Gao", "Wei Gao", False),
    ("Bin-Bin Gao", "Ze-Feng Gao", False),
    ("Smith", "John Smith", False),                    # a bare family name pins only itself
    # a particle written in lower case beside capitals is part of the family name, never a given name, so not
    # the name an initial stands for; capitalised, alone before the family name, it may be one ("Le Song")
    ("de Gaulle", "D. Gaulle", False),
    ("D. Gaulle", "de Gaulle", False),
    ("van der Berg", "V. Berg", False),
    ("de Gaulle", "de Gaulle", True),
    ("de Gaulle", "De Gaulle", True),
    ("de Gaulle", "DE GAULLE", True),                  # all capitals (or none): the case tells nothing
    ("de Gaulle", "Charles de Gaulle", False),         # a bare family name, particle and all, pins only itself
    ("Charles de Gaulle", "C. De Gaulle", True),
    ("Van Nguyen", "V. Nguyen", True),                 # capitalised: a given name
    ("le song", "L. Song", True),                      # written in lower case throughout: as before
    ("Jan Smith", "Janet Smith", False),               # a given name that starts another is no initial of it
    ("Janet Smith", "Jan Smith", False),
])
def test_same_person(pin, author, same):
    assert same_person(name_tokens(pin), name_tokens(author)) is same


def test_a_generational_suffix_is_no_family_name(tmp_path):
    """The arXiv snapshot writes an author's suffix after the family name ("Henry Ford III", from its
    authors_parsed [last, first, suffix]); III was taken for the family name, so the pin "Henry Ford" never
    kept that author's papers. "Jr" was already dropped; a suffix between commas is left out too."""
    from ranker.sources.normalize import clean_authors
    f = tmp_path / "authors.txt"
    f.write_text("Henry Ford\nKing, Jr., Martin Luther\nFord, Edsel, II\n")
    pins = AuthorPins.read(f)
    authors = clean_authors([["Ford", "Henry", "III"], ["King", "Martin Luther", "Jr."], ["Ford", "Edsel B.", "II"]])
    assert authors == ["Henry Ford III", "Martin Luther King Jr.", "Edsel B. Ford II"]
    assert pins.match(Paper(id="1", title="t", abstract="a", authors=authors)) == [
        "Henry Ford", "King, Jr., Martin Luther", "Ford, Edsel, II"]
    assert name_tokens("Ford, Henry III") == name_tokens("Henry Ford IV") == ["henry", "ford"]
    assert pins.match(Paper(id="2", title="t", abstract="a", authors=["Harold Ford III", "Ford II"])) == []


def test_authors_file_aliases_comments_and_bad_lines(tmp_path):
    f = tmp_path / "authors.txt"
    f.write_text("# my people\nJane Q. Doe | J. Doe   # an alias\n\nSch\\\"otz, Christof\n")
    pins = AuthorPins.read(f)
    assert [p.name for p in pins.pins] == ["Jane Q. Doe", 'Sch\\"otz, Christof']
    paper = Paper(id="1", title="t", abstract="a", authors=["Christof Schötz", "Jane Doe"])
    assert pins.match(paper) == ["Jane Q. Doe", 'Sch\\"otz, Christof']
    f.write_text("Jane Doe\n | \n")
    with pytest.raises(InputError) as e:
        AuthorPins.read(f)
    assert e.value.where == f"{f}:2"
    with pytest.raises(InputError, match="authors file not found"):
        AuthorPins.read(tmp_path / "nope.txt")


def test_an_authors_file_given_is_read_instead_of_the_one_beside_the_prompts(tmp_path):
    """[digest] authors = FILE (or --authors) names the file to read: the prompts folder's own authors.txt is
    the default only, never read over it (a user who keeps another list for a run pinned the wrong people)."""
    from ranker.prefilter.rules import load_rules
    prompts = tmp_path / "prompts"
    shutil.copytree(DEFAULT_DIR, prompts)
    (prompts / "authors.txt").write_text("Jane Doe\n")
    mine = tmp_path / "mine.txt"
    mine.write_text("John Roe\n")
    assert [p.name for p in load_rules(prompts).pins.pins] == ["Jane Doe"]
    assert [p.name for p in load_rules(prompts, authors=mine).pins.pins] == ["John Roe"]


def test_a_pinned_family_name_with_its_particle_does_not_pin_an_initial(tmp_path):
    """The pin "de Gaulle" took its particle for a given name and kept every paper of a "D. Gaulle" (and
    "Dmitri Gaulle") as the pinned author's; a pin written with capitals still pins its initial ("Le Song")."""
    f = tmp_path / "authors.txt"
    f.write_text("de Gaulle\nLe Song\n")
    pins = AuthorPins.read(f)
    assert pins.match(Paper(id="1", title="t", abstract="a", authors=["D. Gaulle", "Dmitri Gaulle"])) == []
    assert pins.match(Paper(id="2", title="t", abstract="a", authors=["Ann Smith", "de Gaulle"])) == ["de Gaulle"]
    assert pins.match(Paper(id="3", title="t", abstract="a", authors=["L. Song"])) == ["Le Song"]


def test_a_pin_in_ascii_keeps_the_papers_of_a_name_with_letters_nfkd_leaves_whole(tmp_path):
    """Letters with no accent to drop are matched as their ASCII, by the prefilter's keep rule as by the author
    features (one folding): "Thor Jonsson" did not pin "Þór Jónsson" (a capital thorn was left as it was), "Joan
    Galla" did not pin "Joan Gal·la" (the Catalan middle dot split the name), "Hili" did not pin "Ħili"."""
    from ranker.prefilter import keep_day
    from ranker.prefilter.features import author_key
    from ranker.prefilter.rules import DayRules
    f = tmp_path / "authors.txt"
    f.write_text("Lukasz Kaiser\nThor Jonsson\nJoan Galla\nJohann Strauss\nHili, Marija\n")
    pins = AuthorPins.read(f)
    names = dict(zip(["Łukasz Kaiser", "Þór Jónsson", "Joan Gal·la", "Johann Strauß", "Marija Ħili"],
                     [p.name for p in pins.pins]))
    others = ["Lukas Kaiser", "Joan Gala", "Ann Strau"]
    papers = [Paper(id=str(i), title="t", abstract="a", authors=["Ann Smith", a])
              for i, a in enumerate([*names, *others])]
    score = np.array([0.0] * len(names) + [3.0, 2.0, 1.0])
    order, kept, why, _ = keep_day(score, papers, top=1, min_keep=1, rules=DayRules(pins=pins))
    assert {p.authors[1]: (bool(k), w) for p, k, w in zip(papers, kept, why)} == {
        **{a: (True, "pin") for a in names}, "Lukas Kaiser": (True, "top"), "Joan Gala": (False, "top"),
        "Ann Strau": (False, "top")}
    assert all(pins.match(Paper(id="x", title="t", abstract="a", authors=[a])) == [pin] for a, pin in names.items())
    assert all(author_key(a) == author_key(pin.replace("Hili, Marija", "Marija Hili")) for a, pin in names.items())


def test_exclusion_phrases_and_patterns(tmp_path):
    f = tmp_path / "exclude.txt"
    f.write_text("# never these\nlarge language model\nre:\\bquantum\\b  # physics\n")
    ex = Exclusions.build(["diffusion model"], f)
    assert [(r.text, r.origin) for r in ex.rules] == [("diffusion model", "prefilter.exclude"),
                                                      ("large language model", f"{f}:2"),
                                                      ("re:\\bquantum\\b", f"{f}:3")]

    def hit(title, abstract=""):
        r = ex.match(Paper(id="1", title=title, abstract=abstract))
        return r.text if r else None
    assert hit("Guided Diffusion Models for video") == "diffusion model"          # case, plural
    assert hit("x", "we study diffusion-model sampling") == "diffusion model"     # hyphen
    assert hit("Diffusion modelling of heat") is None                             # whole words only
    assert hit("Large  Language\nModels are ...") == "large language model"
    assert hit("Quantum circuits") == "re:\\bquantum\\b" and hit("Quantumness") is None
    ex = Exclusions.build(["case study", "survey", "policy gradient"])
    assert hit("Three Case Studies of ...") == "case study"                     # consonant + y: -ies
    assert hit("A case-study") == "case study" and hit("Case studying") is None
    assert hit("Surveys of X") == "survey" and hit("Policy gradients") == "policy gradient"
    ex = Exclusions.build(["GAN", "image patch", "box"])           # whole words at the start too; -es plurals
    assert hit("Organ segmentation with U-Nets") is None and hit("StyleGAN editing") is None
    assert hit("GANs for tabular data") == "GAN" and hit("x", "a conditional GAN") == "GAN"
    assert hit("Learning from Image Patches") == "image patch" and hit("Bounding boxes") == "box"
    ex = Exclusions.build(["C++", "F# code"])                     # the symbols are part of the word
    assert hit("Fuzzing C++ compilers") == "C++" and hit("x", "we port F# code to ...") == "F# code"
    assert hit("Appendix C of the proof") is None and hit("C-level reasoning") is None
    f.write_text("C# code\t# a tab before the comment\n")
    assert [r.text for r in Exclusions.build([], f).rules] == ["C# code"]
    f.write_text("re:(unclosed\n")
    with pytest.raises(InputError) as e:
        Exclusions.build([], f)
    assert e.value.where == f"{f}:1" and "regular expression" in str(e.value)



@pytest.mark.parametrize("rule", ["re:", "re:  ", "re:x*", "re:^", "re:(?!quantum)", "re:|quantum",
                                  "re:|withdrawn", "re:\\s*"])
def test_a_pattern_that_matches_an_empty_text_is_refused_not_applied_to_every_paper(tmp_path, rule):
    """A pattern an empty text matches matches every paper: a line `re:` left unfinished excluded the whole day
    (`kept 0 of 192 papers`, exit 0). Refused where it is written, in the file or in the settings."""
    f = tmp_path / "exclude.txt"
    f.write_text(f"# never these\n{rule}\n")
    with pytest.raises(InputError) as e:
        Exclusions.build([], f)
    assert e.value.where == f"{f}:2" and "matches every paper" in str(e.value)
    with pytest.raises(ConfigError) as e:
        Exclusions.build([rule])
    assert e.value.key == "prefilter.exclude" and "matches every paper" in str(e.value)
    assert Exclusions.build(["re:\\bquantum\\b"]).rules        # a pattern that needs some text still is one


@pytest.mark.parametrize("rule", ["re:.", "re:\\b", "re:\\w", "re:\\S", "re:[a-z]", "re:[aeiou]"])
def test_a_pattern_every_real_paper_matches_is_refused(tmp_path, rule):
    """`re:.`, `re:\\b`, `re:\\w` need a text, so the empty-text refusal let them through, but every paper has one:
    the whole day was excluded ("kept 0 of 192 papers", exit 0). A pattern that matches each paper of a real day
    (the one bundled with ranker) is refused where it is written, the file's line or the setting, as one that
    matches an empty text is."""
    f = tmp_path / "exclude.txt"
    f.write_text(f"re:\\bquantum\\b\n{rule}\n")
    with pytest.raises(InputError) as e:
        Exclusions.build([], f)
    assert e.value.where == f"{f}:2", e.value.where
    assert str(e.value) == (f"{f}:2: {rule!r} matches every paper (it matches each of the 192 papers of a real day, "
                            "2025-05-15); give what a title or abstract must contain")
    with pytest.raises(ConfigError) as e:
        Exclusions.build([rule])
    assert e.value.key == "prefilter.exclude" and "matches every paper" in str(e.value)


@pytest.mark.parametrize("rule", ["re:\\bquantum\\b", "re:^Towards", "re:(?i)\\bLLMs?\\b", "re:\\bwe\\b",
                                  "re:(?s)^(?!.*\\btransformer)"])
def test_a_pattern_many_real_papers_match_is_still_a_rule(rule):
    """A broad pattern that some real paper escapes is the user's to write (a topic filter as an exclusion: every
    paper not naming transformers)."""
    assert Exclusions.build([rule]).rules[0].text == rule


@pytest.mark.parametrize("phrase", ["a", "the", "The"])
def test_a_stop_word_as_an_exclusion_is_said_not_refused(tmp_path, phrase):
    """`a` or `the` as a phrase matches 190 of the bundled day's 192 papers: not every one, so not refused, and it
    was taken without a word (a day of 2 papers kept). Each rule matching more than 90% of that day is said, one
    line naming where it is written; a narrow rule is not."""
    from ranker.steps import day_rules
    from ranker.prompts import load_prompts
    f = tmp_path / "exclude.txt"
    f.write_text(f"diffusion model\n{phrase}\n")
    ex = Exclusions.build(["re:\\bquantum\\b"], f)
    assert [r.text for r in ex.rules] == ["re:\\bquantum\\b", "diffusion model", phrase]      # still rules
    said = ex.broad()
    assert len(said) == 1 and said[0].startswith(f"{f}:2: the exclusion {phrase!r} matches 19"), said
    assert said[0].endswith(" of the 192 papers of a real day (2025-05-15): nearly every paper would be excluded "
                            "(applied as written; a phrase names what a title or abstract must contain to be left "
                            "out)"), said
    # through the settings, as `ranker prefilter`, `run` and `backfill` read them: the config's phrase named by its key
    prompts = tmp_path / "prompts"
    shutil.copytree(DEFAULT_DIR, prompts)
    cfg = tmp_path / "ranker.toml"
    cfg.write_text(f"[prefilter]\nexclude = ['{phrase}', 'reinforcement learning']\n[scoring]\nprompts = '{prompts}'\n")
    s = resolve(cfg, env={"RANKER_HOME": str(tmp_path / "home")})
    heard: list[str] = []
    rules = day_rules(s, load_prompts(s.scoring.prompts), heard.append)
    assert len(rules.exclusions.rules) == 2
    assert len(heard) == 1 and heard[0].startswith(f"prefilter.exclude: the exclusion {phrase!r} matches "), heard
    assert Exclusions.build(["reinforcement learning", "re:^Towards"]).broad() == []


@pytest.mark.parametrize("rule", ["re:(?s)^(?!.*\\btransformer)", "re:^(?!.*\\bllm\\b)", "re:(?s)^(?!.*xyzzy)"])
def test_the_topic_filter_written_as_an_exclusion_is_not_said_to_be_broad(tmp_path, rule):
    """`re:(?s)^(?!.*\\btransformer)` (every paper not naming transformers: 174 of the bundled day's 192) is a
    rule written to exclude most of a day, kept as one (test_a_pattern_many_real_papers_match_is_still_a_rule):
    it was said as "nearly every paper would be excluded" by each prefilter, run and backfill that used it. A
    pattern that needs a word is still said, as the phrase is."""
    f = tmp_path / "exclude.txt"
    f.write_text(f"{rule}\nre:\\bthe\\b\n")
    said = Exclusions.build([], f).broad()
    assert len(said) == 1, said
    assert said[0].startswith(f"{f}:2: the exclusion 're:\\\\bthe\\\\b' matches 190 of the 192 "), said
    assert Exclusions.build([rule]).broad() == []


@pytest.mark.parametrize("rule,excluded,kept", [
    # the topic filter written as an exclusion: every paper that does not name LLMs
    ("re:(?s)^(?!.*\\bllm\\b)", "Graph coloring\nWe colour graphs.", "An LLM agent\nWe distil."),
    ("re:(?m)^$", "A title with no abstract\n", "A title\nAn abstract."),      # an empty abstract
    # a word or an empty text: they match their own source too, not a real title (they were refused)
    ("re:withdrawn|^$", "This paper has been withdrawn\nBy the authors.", "A title\nAn abstract."),
    ("re:retracted|^\\s*$", "A retracted result\nSee v2.", "A title\nAn abstract."),
])
def test_a_pattern_that_matches_an_empty_text_but_not_every_text_is_still_a_rule(tmp_path, rule, excluded, kept):
    """The empty-text refusal took these for unfinished lines ("matches every paper") though each needs something
    missing: an exclusions file that worked was refused whole."""
    f = tmp_path / "exclude.txt"
    f.write_text(f"{rule}\n")
    for ex in (Exclusions.build([], f), Exclusions.build([rule])):
        hit = [ex.match(Paper(id="1", title=t, abstract=a)) for t, a in (x.split("\n", 1) for x in (excluded, kept))]
        assert [r.text if r else None for r in hit] == [rule, None]


def test_an_exclusion_with_punctuation_between_its_words_catches_the_text_it_was_copied_from():
    """A phrase with a dot, slash, apostrophe or ampersand between two words ("GPT-3.5", "A/B testing") asked
    for spaces or hyphens there and so never matched the very title it was copied from: no paper was excluded."""
    ex = Exclusions.build(["GPT-3.5", "A/B testing", "Alzheimer's disease", "Q&A", "O(n log n)"])

    def hit(title):
        r = ex.match(Paper(id="1", title=title, abstract=""))
        return r.text if r else None
    assert hit("Prompting GPT-3.5 for code") == "GPT-3.5" and hit("gpt 3.5-turbo as a judge") == "GPT-3.5"
    assert hit("Online A/B Testing at scale") == "A/B testing" and hit("A / B testing") == "A/B testing"
    assert hit("Early Alzheimer\u2019s Disease detection") == "Alzheimer's disease"
    assert hit("Retrieval for Q&A") == "Q&A" and hit("An O(n log n) sort") == "O(n log n)"
    # the punctuation stands for itself: other numbers, words or a missing mark are other texts
    assert hit("GPT-3 and 5 others") is None and hit("GPT-3.55") is None and hit("A B testing") is None
    assert hit("Alzheimers disease") is None and hit("QA pairs") is None


def test_an_exclusion_copied_with_a_dash_catches_the_hyphenated_text():
    """A phrase copied from a web page or a PDF often has an en dash, em dash, Unicode hyphen or minus sign where
    arXiv's title has "-": read as a hyphen, as it was before punctuation between words had to be there too (since
    then "Hodgkin–Huxley model" excluded no "Hodgkin-Huxley" paper). A dash in the text counts as a hyphen too."""
    phrases = ["Hodgkin\u2013Huxley model", "vision\u2014language model", "state\u2011space model",
               "Kolmogorov\u2212Arnold network", "GPT\u20103.5"]
    ex = Exclusions.build(phrases)

    def hit(title):
        r = ex.match(Paper(id="1", title=title, abstract=""))
        return r.text if r else None
    assert hit("A Hodgkin-Huxley model of spiking") == phrases[0] == hit("The Hodgkin\u2013Huxley Models")
    assert hit("Hodgkin Huxley models") == phrases[0]
    assert hit("Vision-Language Models are few-shot learners") == phrases[1]
    assert hit("Selective State-Space Models") == phrases[2]
    assert hit("Kolmogorov-Arnold Networks") == phrases[3] and hit("Prompting GPT-3.5") == phrases[4]
    assert hit("Huxley model") is None and hit("GPT 3.5") == phrases[4] and hit("GPT-35") is None
    # a hyphen in the phrase catches a dash in the text, and a dash still leaves other punctuation as it was
    ex = Exclusions.build(["diffusion-model", "A\u2013B/C testing"])
    assert ex.match(Paper(id="1", title="Diffusion\u2014Models", abstract="")).text == "diffusion-model"
    assert ex.match(Paper(id="1", title="A-B/C testing", abstract="")).text == "A\u2013B/C testing"
    assert ex.match(Paper(id="1", title="A-B C testing", abstract="")) is None


# --------------------------------------------------------------------------- a shared day
PINNED = {"2505.09263", "2505.09264", "2505.09265",      # Bin-Bin Gao (not Wei Gao, Ze-Feng Gao, ...)
          "2505.09089",                                  # Christof Schötz, pinned in TeX
          "2505.09287",                                  # Valdemar Švábenský, pinned by an initial alias
          "2505.08808", "2505.09203"}                    # Hao Sun (not Li Sun, Lichao Sun, ...)


@pytest.fixture
def day_setup(tmp_path):
    prompts = tmp_path / "prompts"
    shutil.copytree(DEFAULT_DIR, prompts)
    (prompts / "authors.txt").write_text("Bin-Bin Gao\nSch\\\"otz, Christof\nV. Svabensky | Valdemar Svabensky\n"
                                         "Hao Sun\nYann LeCun   # nothing today\n")
    (prompts / "exclude.txt").write_text("diffusion model\nre:^\\s*federated\n")
    cfg = tmp_path / "ranker.toml"
    cfg.write_text(f"[prefilter]\ntop = 8\nexclude = ['reinforcement learning']\n[scoring]\nbackend = 'fake'\n"
                   f"prompts = '{prompts}'\n[digest]\nmin_relevance = 5\nmin_novelty = 5\n")
    db = tmp_path / "db.sqlite3"
    papers = list(read_papers(LISTING))
    with Store(db) as s:
        store_vectors(s, papers)
    return cfg, db, papers


def test_pins_and_exclusions_on_a_shared_day(day_setup, tmp_path):
    cfg, db, papers = day_setup
    s = resolve(cfg, flags={"db": db}, env={"RANKER_HOME": str(tmp_path / "home")})
    text = {p.id: f"{p.title}\n{p.abstract}".lower() for p in papers}
    be = FakeBackend("tiny")
    with Store(db) as store:
        res = run_day(fetch_day(LISTING, s, store=store), tmp_path / "out", s, store=store, backend=be)
    ranked = read_ranked(res.files["prefilter"])
    rule = {r.paper.id: r.rule for r in ranked}
    kept = {r.paper.id for r in ranked if r.kept}
    excluded = {i for i, r in rule.items() if r.startswith("exclude:")}

    # exclusions: the rule that matched is named, and no excluded paper reached the backend
    assert {rule[i] for i in excluded} == {"exclude:diffusion model", "exclude:re:^\\s*federated",
                                           "exclude:reinforcement learning"}
    assert all("diffusion" in text[i] for i in excluded if rule[i] == "exclude:diffusion model")
    assert all("reinforcement learning" in text[i] for i in excluded if rule[i] == "exclude:reinforcement learning")
    assert all(text[i].startswith("federated") for i in excluded if "federated" in rule[i])
    assert all(not any(w in text[i] for w in ("diffusion model", "reinforcement learning"))
               for i in rule if i not in excluded)
    asked = {i for call in be.calls for key in call for i in key.split(",")}
    assert not asked & excluded and asked == kept
    assert not kept & excluded

    # pins: kept whatever their score (besides the top 8 of the rest), marked, and only the right people
    pinned_kept = {i for i, r in rule.items() if r == "pin"}
    assert pinned_kept == PINNED - excluded and "2505.09089" in excluded      # Schötz's paper is on diffusion
    top8 = [r.paper.id for r in ranked if not r.rule.startswith("exclude:")][:8]
    assert kept == set(top8) | pinned_kept

    # the digest: every pinned paper is in it; those that are not picks come first, marked "Author match"
    md = res.files["markdown"].read_text()
    js = json.loads(res.files["json"].read_text())
    assert PINNED <= set(js)
    matches = [i for i, e in js.items() if e["COMMENT"] == "Author match"]
    assert matches == list(js)[:len(matches)]                                 # first
    assert all(js[i]["author_match"] for i in matches)
    assert js["2505.09089"]["RELEVANCE"] is None and js["2505.09089"]["author_match"] == ['Sch\\"otz, Christof']
    picks = [i for i in js if i not in matches]
    assert {i for i in picks if js[i].get("pinned_authors")} == set(picks) & PINNED == {"2505.08808"}  # marked
    assert f"Total relevant papers: {len(picks)}\n\nTotal author matches: {len(matches)}\n" in md
    assert md.count("**Comment:** Author match") == len(matches)
    c = res.manifest["counts"]
    assert (c["excluded"], c["pinned"], c["author_matches"], c["selected"]) == (
        len(excluded), len(pinned_kept), len(matches), len(picks))
    assert res.manifest["exclusions_matched"] == sorted({rule[i][len("exclude:"):] for i in excluded})


def test_the_prefilter_command_names_the_rule(day_setup, tmp_path):
    cfg, db, _ = day_setup
    r = ranker("prefilter", "--papers", LISTING, "--out", tmp_path / "r.jsonl", "--db", db, "--config", cfg)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    by_id = {x["id"]: x for x in rows}
    assert by_id["2505.09089"]["rule"] == "exclude:diffusion model" and not by_id["2505.09089"]["kept"]
    assert by_id["2505.09264"]["rule"] == "pin" and by_id["2505.09264"]["kept"]
    assert "excluded by a rule" in r.stderr and "by pinned authors" in r.stderr


def test_the_prefilter_command_warns_of_a_stop_word_exclusion_once_and_applies_it(day_setup, tmp_path):
    cfg, db, _ = day_setup
    ex = tmp_path / "prompts" / "exclude.txt"
    ex.write_text(ex.read_text() + "the\n")
    r = ranker("prefilter", "--papers", LISTING, "--out", tmp_path / "r.jsonl", "--db", db, "--config", cfg)
    assert r.returncode == 0, r.stderr
    said = [x for x in r.stderr.splitlines() if "nearly every paper" in x]
    assert said == [f"warning: {ex}:3: the exclusion 'the' matches 190 of the 192 papers of a real day (2025-05-15): "
                    "nearly every paper would be excluded (applied as written; a phrase names what a title or "
                    "abstract must contain to be left out)"], r.stderr
    assert "excluded by a rule" in r.stderr


def test_the_stored_ranking_keeps_each_rule_and_the_web_pages_show_it(day_setup, tmp_path):
    """run_day stores the day's ranking with the rule that decided each paper (what `ranker serve` and
    `ranker site` read), and the day and paper pages badge them: pinned, excluded (naming the rule)."""
    pytest.importorskip("jinja2")
    from ranker.web import views
    from ranker.web.render import ServeUrls, render
    cfg, db, _ = day_setup
    s = resolve(cfg, flags={"db": db}, env={"RANKER_HOME": str(tmp_path / "home")})
    with Store(db) as store:
        res = run_day(fetch_day(LISTING, s, store=store), tmp_path / "out", s, store=store, backend=FakeBackend("t"))
        rule = {r.paper.id: r.rule for r in read_ranked(res.files["prefilter"])}
        stored = {r.paper_id: r.rule for r in store.get_rankings("2025-05-15")}
        assert stored == {i: r or None for i, r in rule.items()}
        pinned = {i for i, r in rule.items() if r == "pin"}
        excluded = {i for i, r in rule.items() if r.startswith("exclude:")}
        assert pinned and excluded

        page = views.day_page(store, "2025-05-15")
        rows = page.picks + page.rest
        assert {r.paper.id for r in rows if r.rule == "pin"} == pinned
        html = render("day.html", urls=ServeUrls(), page=page)
        assert html.count('class="badge pin"') == len(pinned)
        assert html.count('class="badge exclude"') == len(excluded)
        assert 'title="an exclusion dropped it: diffusion model">excluded</span>' in html
        assert 'title="an exclusion dropped it: re:^\\s*federated">excluded</span>' in html

        paper = render("paper.html", urls=ServeUrls(), page=views.paper_page(store, "2505.09089"))
        assert '<span class="badge exclude" title="diffusion model">excluded</span>' in paper
        paper = render("paper.html", urls=ServeUrls(), page=views.paper_page(store, "2505.09264"))
        assert '<span class="badge pin">pinned</span>' in paper

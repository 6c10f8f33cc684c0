"""The satisfaction survey as an interactive list: read from the automation file, a body
WhatsApp accepts, and the rating read back from the customer's choice."""

from __future__ import annotations

import pytest

from domain import automation_content
from domain.automation_content import ContentError, SurveyList, rating_of_list_reply, survey_list_from
from domain.outbound_kinds import check
from settings import settings


def test_the_shipped_survey_list_is_a_body_the_cloud_api_takes():
    survey = survey_list_from(settings.automation_file)
    assert survey is not None
    body = survey.body({"name": "Budi", "business": "Toko Kami"})
    check(body, "cloud")  # raises NotSendable naming the field otherwise
    rows = body["interactive"]["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == ["rating:1", "rating:2", "rating:3", "rating:4", "rating:5"]
    assert rows[4]["title"].startswith("\u2b50" * 5)
    assert "Toko Kami" in body["interactive"]["body"]["text"]


def test_long_rating_names_are_cut_to_whatsapps_row_title_limit():
    body = SurveyList("Q?", "Nilai", ("a" * 30,) * 5).body({})
    titles = [r["title"] for r in body["interactive"]["action"]["sections"][0]["rows"]]
    assert all(len(t) <= 24 for t in titles)
    check(body, "cloud")


def test_a_survey_list_needs_five_ratings(tmp_path):
    path = tmp_path / "automation.toml"
    path.write_text('[survey_list]\ntext = "Q?"\nbutton = "Nilai"\nratings = ["buruk", "baik"]\n')
    automation_content.survey_list_from.cache_clear()
    with pytest.raises(ContentError, match="ratings"):
        survey_list_from(path)


@pytest.mark.parametrize(
    ("chosen", "rating"), [("rating:4", 4), ("rating:0", None), ("rating:x", None), ("other", None)]
)
def test_the_rating_is_read_from_the_chosen_row(chosen, rating):
    payload = {"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": chosen}}}
    assert rating_of_list_reply(payload) == rating

"""/summary, /ask, /articles, /about, /help."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal, Optional

import discord
from discord import app_commands
from discord.ext import commands

from ....handlers.reply import Reply
from ....render.discord import render_reply
from ..respond import UserFacingError, defer
from ..views import ArticlesView

if TYPE_CHECKING:
    from ..client import PrecisBot

log = logging.getLogger("bot.adapters.discord")

Mode = Literal["extractive", "abstractive"]
MAX_QUERY = 200
MAX_QUESTION = 300
ARTICLES_PER_PAGE = 8
HELP_TEXT = """**/summary** `article:` a title (pick one as you type), title words or an id — or `topic:` words to summarise across articles — or `url:` a link to a news page (also: right-click a message › Apps › **Summarise link**). Options: `mode:` extractive | abstractive, `length:` 1–10 sentences, `private:` only you see it.
**/ask** `question:` up to 300 characters; the answer quotes the articles it comes from.
**/articles** `query:` optional words; newest first, with buttons to page.
**/digest now** · **status** · **subscribe** `channel:` `at:` HH:MM UTC or `every:` minutes · **unsubscribe** `channel:` (subscribe and unsubscribe need Manage Server).
**/corpus reload** load new articles from the corpus folder (Manage Server).
**/feed add** `url:` · **remove** `feed:` (Manage Server) · **list**: RSS/Atom feeds whose new articles join this server's articles and digests.
**/about** corpus size, models, uptime, version.

Every summary and answer lists its supporting sentences, numbered, with the article title and date."""


def title_choices(bot: PrecisBot, current: str, *, value: str = "id",
                  guild_id: int | None = None) -> list[app_commands.Choice[str]]:
    """Up to 25 articles this guild may see whose title holds every typed word (newest first); no model involved."""
    words = current.lower().split()
    out: list[app_commands.Choice[str]] = []
    snap = bot.app.snapshot  # swapped whole on reload: safe to read
    articles = snap.index.articles
    for r in reversed(bot.app.visible_rows(snap, guild_id)):
        a = articles[r]
        title = a.title.lower()
        if all(w in title for w in words) or (current.strip() and a.id == current.strip()):
            label = a.title if not a.date else f"{a.title} ({a.date})"
            name = label if len(label) <= 100 else label[:99] + "…"
            val = a.id if value == "id" else (a.title if len(a.title) <= 100 else a.title[:100].rsplit(" ", 1)[0])
            out.append(app_commands.Choice(name=name, value=val))
            if len(out) == 25:
                break
    return out


class QueryCog(commands.Cog, name="Query"):
    def __init__(self, bot: PrecisBot) -> None:
        self.bot = bot

    async def article_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return title_choices(self.bot, current, guild_id=interaction.guild_id)

    async def query_autocomplete(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return title_choices(self.bot, current, value="title", guild_id=interaction.guild_id)

    @app_commands.command(name="summary", description="Summarise one article, or a topic across articles, with the supporting sentences")
    @app_commands.describe(
        article="The article: pick a title, or type title words or an article id",
        topic="Or a topic: words to summarise across the articles that match",
        mode="extractive (sentences from the article) or abstractive (rewritten by the model)",
        length="How many sentences, 1 to 10",
        private="Only you see the answer",
        url="Or a link to a news page: fetched, summarised and added to this server's articles",
    )
    @app_commands.autocomplete(article=article_autocomplete)
    async def summary(
        self,
        interaction: discord.Interaction,
        article: Optional[app_commands.Range[str, 1, MAX_QUERY]] = None,
        topic: Optional[app_commands.Range[str, 1, MAX_QUERY]] = None,
        mode: Mode = "extractive",
        length: Optional[app_commands.Range[int, 1, 10]] = None,
        private: bool = False,
        url: Optional[app_commands.Range[str, 1, 500]] = None,
    ) -> None:
        given = [bool((v or "").strip()) for v in (article, topic, url)]
        if sum(given) != 1:
            raise UserFacingError("Give exactly one of `article:` (a title, title words or an id), `topic:` (words) "
                                  "or `url:` (a link).")
        await self.bot.run_model_command(
            interaction, private, self.bot.handlers.summary, article=article, topic=topic, mode=mode, length=length,
            url=url, guild_id=interaction.guild_id,
        )

    @app_commands.command(name="ask", description="Ask a question; the answer comes from the articles, with its supporting sentences")
    @app_commands.describe(
        question="Your question (up to 300 characters)",
        mode="extractive (quoted sentences) or abstractive (a written answer grounded in them)",
        private="Only you see the answer",
    )
    async def ask(
        self,
        interaction: discord.Interaction,
        question: app_commands.Range[str, 1, MAX_QUESTION],
        mode: Mode = "extractive",
        private: bool = False,
    ) -> None:
        await self.bot.run_model_command(interaction, private, self.bot.handlers.ask, question, mode=mode,
                                         guild_id=interaction.guild_id)

    @app_commands.command(name="articles", description="List the newest articles, or those matching a query, page by page")
    @app_commands.describe(query="Words to look for (leave empty for the newest articles)", private="Only you see the list")
    @app_commands.autocomplete(query=query_autocomplete)
    async def articles(
        self,
        interaction: discord.Interaction,
        query: Optional[app_commands.Range[str, 1, MAX_QUERY]] = None,
        private: bool = False,
    ) -> None:
        with self.bot.pool.reserve("articles") as slot:
            await defer(interaction, private=private)
            reply = await slot.run(self.bot.handlers.articles, query, 1, ARTICLES_PER_PAGE, interaction.guild_id)
        if not reply.ok:
            raise UserFacingError(reply.text)
        rendered = render_reply(reply)
        pages = int(reply.meta.get("pages", 1))
        view = ArticlesView(self.bot, query, 1, pages, ARTICLES_PER_PAGE, interaction.guild_id) if pages > 1 else None
        await self.bot.send_rendered(interaction, rendered, private=private, view=view)

    @app_commands.command(name="about", description="What Precis is running: corpus size, models, uptime, version")
    async def about(self, interaction: discord.Interaction) -> None:
        rendered = render_reply(self.bot.handlers.about(guild_id=interaction.guild_id))
        await self.bot.respond_now(interaction, rendered, private=False)

    @app_commands.command(name="help", description="How to use Precis")
    async def help(self, interaction: discord.Interaction) -> None:
        rendered = render_reply(Reply(kind="help", title="Precis: how to use it", text=HELP_TEXT))
        await self.bot.respond_now(interaction, rendered, private=True)

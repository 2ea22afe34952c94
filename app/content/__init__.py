"""Player-facing content: CMS pages, FAQ entries, announcements and banners, each with a
staff-edited draft and a published copy per language (``models``, ``sanitize``, ``editing``
for staff, ``reading`` for the player app, ``media`` for banner and announcement images)."""
